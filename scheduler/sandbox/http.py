"""The Twilio sandbox's HTTP face: Twilio's Messages endpoints, auth, scripted failures."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scheduler.sandbox.model import (
    API_VERSION,
    DEFAULT_PAGE_SIZE,
    MAX_BODY_CHARS,
    MAX_PAGE_SIZE,
    Scripted,
    error_payload,
    is_e164,
    is_sender,
    page_of,
    parse_date_filter,
)
from scheduler.sandbox.world import SandboxWorld

log = logging.getLogger(__name__)

_SCRIPT_CODES = {429: 20429, 500: 20500, 503: 20503}
Handler = Callable[[Request], Awaitable[Response]]


def build_app(
    world: SandboxWorld,
    transports: Mapping[tuple[str, int], asyncio.Transport],
) -> Starlette:
    """The Starlette app; `transports` maps client addresses to connections (to drop one)."""
    api = _Api(world, transports)
    prefix = f"/{API_VERSION}/Accounts/{{account_sid}}"
    routes = [
        Route(f"{prefix}/Messages.json", api.messages, methods=["GET", "POST"]),
        Route(f"{prefix}/Messages/{{sid}}.json", api.message, methods=["GET"]),
    ]
    handlers: dict[Any, Any] = {HTTPException: api.http_error}
    return Starlette(routes=routes, exception_handlers=handlers)


class _Api:
    def __init__(
        self, world: SandboxWorld, transports: Mapping[tuple[str, int], asyncio.Transport]
    ) -> None:
        self.world = world
        self.transports = transports

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        self.world.count("other")
        if status == 404:
            return twilio_error(20404, path=request.url.path)
        if status == 405:
            return twilio_error(20004, http_status=405, message="Method not allowed")
        return twilio_error(20500, http_status=status)

    async def messages(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._serve(request, "create", self._create)
        return await self._serve(request, "list", self._list)

    async def message(self, request: Request) -> Response:
        return await self._serve(request, "fetch", self._fetch)

    async def _serve(self, request: Request, operation: str, handler: Handler) -> Response:
        """Count, delay, apply a scripted outcome, check auth, then do the real work."""
        self.world.count(operation)
        if self.world.latency > 0:
            await asyncio.sleep(self.world.latency)
        scripted = self.world.next_script(operation)
        if scripted and not scripted.created:
            return await self._scripted(request, scripted)
        if not self._authorized(request):
            return twilio_error(20003)
        response = await handler(request)
        if scripted:  # created=True: the work is done, but the client only sees the failure
            return await self._scripted(request, scripted)
        return response

    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        path_account = request.path_params.get("account_sid", "")
        return (
            _same(user, self.world.account_sid)
            and _same(password, self.world.auth_token)
            and _same(path_account, self.world.account_sid)
        )

    # --- scripted failures -------------------------------------------------------------

    async def _scripted(self, request: Request, scripted: Scripted) -> Response:
        if scripted.kind == "timeout":
            await self._hang()
            return twilio_error(20500)  # nobody is listening any more
        if scripted.kind == "disconnect":
            await self._drop_connection(request)
            return Response(status_code=500)  # never sent: the connection is gone
        status = scripted.http_status or 500
        code = scripted.code or _SCRIPT_CODES.get(status, 20500)
        response = twilio_error(code, http_status=status, message=scripted.message)
        if scripted.retry_after is not None:
            response.headers["Retry-After"] = f"{scripted.retry_after:g}"
        return response

    async def _hang(self) -> None:
        stopping = self.world.stopping
        assert stopping is not None
        with contextlib.suppress(TimeoutError):  # the hang ends at stop() or after hang_seconds
            await asyncio.wait_for(stopping.wait(), self.world.hang_seconds)

    async def _drop_connection(self, request: Request) -> None:
        client = request.scope.get("client")
        key = (client[0], client[1]) if client else None
        transport = self.transports.get(key) if key else None
        if transport is None:
            log.warning("sandbox: no connection to drop for %s", client)
            return
        transport.abort()
        # connection_lost runs on a later loop turn; after it, uvicorn sends nothing.
        for _ in range(100):
            if key not in self.transports:
                break
            await asyncio.sleep(0)

    # --- Messages ----------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        form = dict(
            parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        )
        invalid = validate_create(form)
        if invalid is not None:
            return invalid
        to = form["To"].strip()
        refusal = self.world.refusal(to)
        if refusal is not None:
            return twilio_error(
                refusal.code, http_status=refusal.http_status, message=refusal.message, to=to
            )
        message = self.world.create(form, to)
        return JSONResponse(message.resource(), status_code=201)

    async def _fetch(self, request: Request) -> Response:
        resource = self.world.resource(request.path_params["sid"])
        if resource is None:
            return twilio_error(20404, path=request.url.path)
        return JSONResponse(resource)

    async def _list(self, request: Request) -> Response:
        query = request.query_params
        try:
            page_size = int(query.get("PageSize", DEFAULT_PAGE_SIZE))
            page = int(query.get("Page", 0))
            after, before = date_window(query)
        except ValueError as exc:
            return twilio_error(20001, param=str(exc))
        if not 1 <= page_size <= MAX_PAGE_SIZE or page < 0:
            return twilio_error(20001, param="PageSize")
        found = self.world.matching(
            to=query.get("To"), sender=query.get("From"), after=after, before=before
        )
        filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}
        body = page_of(
            found,
            path=request.url.path,
            filters=filters,
            page_size=page_size,
            page=page,
            token=query.get("PageToken"),
        )
        return JSONResponse(body)


def _same(given: str, expected: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII str, and a client may send anything.
    return hmac.compare_digest(given.encode(), expected.encode())


def twilio_error(
    code: int, *, http_status: int | None = None, message: str | None = None, **fill: str
) -> JSONResponse:
    status, body = error_payload(code, http_status=http_status, message=message, **fill)
    return JSONResponse(body, status_code=status)


def validate_create(form: dict[str, str]) -> Response | None:
    """Twilio's checks on a new message, in Twilio's order; None when it is acceptable."""
    to = form.get("To", "").strip()
    sender = form.get("From", "").strip()
    callback = form.get("StatusCallback", "")
    if not to:
        return twilio_error(21604)
    if not sender and not form.get("MessagingServiceSid"):
        return twilio_error(21603)
    if not form.get("Body"):
        return twilio_error(21602)
    if not is_e164(to):
        return twilio_error(21211, to=to)
    if sender and not is_sender(sender):
        return twilio_error(21212, from_=sender)
    if len(form["Body"]) > MAX_BODY_CHARS:
        return twilio_error(21617)
    if callback and not callback.startswith(("http://", "https://")):
        return twilio_error(21609, url=callback)
    return None


def date_window(query: Mapping[str, str]) -> tuple[datetime | None, datetime | None]:
    """DateSent (one day), DateSent> and DateSent< as an inclusive UTC window."""
    after = before = None
    if "DateSent" in query:
        after = parse_date_filter(query["DateSent"][:10], upper=False)
        before = parse_date_filter(query["DateSent"][:10], upper=True)
    if "DateSent>" in query:
        after = parse_date_filter(query["DateSent>"], upper=False)
    if "DateSent<" in query:
        before = parse_date_filter(query["DateSent<"], upper=True)
    return after, before
