"""`vasooli web`: Twilio status callbacks, inbound SMS and a health check.

Starlette + uvicorn: a small ASGI app that can share the asyncio loop with the bot and the
worker in `vasooli run`; database work runs in threads (asyncio.to_thread), never on it.

Every Twilio request must carry a valid X-Twilio-Signature, computed by Twilio over the
PUBLIC URL it called (PUBLIC_BASE_URL + path + query), not the URL this process sees
behind a proxy. An unsigned or wrongly signed request gets 403 and changes nothing.
Inbound SMS are answered with empty TwiML: replies go through the outbox, so they are
recorded, rate-limited, retried and held to the sending rules like every other SMS.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from urllib.parse import parse_qsl

import uvicorn
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from twilio.request_validator import RequestValidator

from db import clock, process
from db.agency import agency_of
from db.config import Settings, SettingsError, load_settings, require
from db.models import Message
from db.services.errors import ServiceError
from db.services.sms import inbound, outbox
from db.session import make_engine, make_session_factory
from scheduler import twilio_codes

log = logging.getLogger(__name__)

STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
HEALTH_PATH = "/healthz"
MAX_FORM_BYTES = 64 * 1024  # Twilio's webhooks are a few hundred bytes
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# A callback can beat the worker's commit of the SID it reports on: look again briefly.
UNKNOWN_SID_WAITS = (0.2, 0.5, 1.0)


class Outcome(StrEnum):
    APPLIED = "applied"
    IGNORED = "ignored"
    UNKNOWN = "unknown"


def status_callback_url(settings: Settings) -> str:
    """The StatusCallback URL the worker gives Twilio for each message."""
    require(settings, "public_base_url")
    return f"{settings.public_base_url}{STATUS_PATH}"


def check_web_settings(settings: Settings) -> None:
    """Signatures cannot be checked without the public URL and the auth token: refuse."""
    require(settings, "public_base_url", "twilio_auth_token")
    assert settings.twilio_auth_token is not None
    if not settings.twilio_auth_token.get_secret_value().strip():
        raise SettingsError("setting TWILIO_AUTH_TOKEN is required for this command")


def _clip(value: str | None, size: int) -> str | None:
    value = (value or "").strip()
    return value[:size] or None


class _Webhooks:
    """The request handlers, holding the settings, the validator and the session factory."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        unknown_sid_waits: tuple[float, ...],
    ) -> None:
        assert settings.public_base_url and settings.twilio_auth_token
        self.settings = settings
        self.agency = agency_of(settings)
        self.public = settings.public_base_url.rstrip("/")
        self.validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
        self.factory = factory
        self.waits = unknown_sid_waits

    async def _read(self, request: Request) -> bytes | None:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _verified(self, request: Request) -> ImmutableMultiDict | Response:
        """The form parameters of a correctly signed request, or the refusal to send."""
        body = await self._read(request)
        if body is None:
            return PlainTextResponse("request too large", status_code=413)
        form = ImmutableMultiDict(
            parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        )
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = self.public + request.url.path + (f"?{query}" if query else "")
        signature = request.headers.get("x-twilio-signature", "")
        if not signature or not self.validator.validate(url, form, signature):
            log.warning("refused %s: bad or missing Twilio signature", request.url.path)
            return PlainTextResponse("invalid signature", status_code=403)
        return form

    def _apply_sync(self, sid: str, status: str, code: str | None) -> Outcome:
        with self.factory.begin() as session:
            known = session.scalar(select(Message.id).where(Message.provider_sid == sid))
            if known is None:
                return Outcome.UNKNOWN
            applied = twilio_codes.apply_status(
                session,
                sid=sid,
                status=status,
                error_code=code,
                source=outbox.EventSource.CALLBACK,
                settings=self.settings,
            )
            return Outcome.APPLIED if applied else Outcome.IGNORED

    async def status(self, request: Request) -> Response:
        form = await self._verified(request)
        if isinstance(form, Response):
            return form
        sid = _clip(form.get("MessageSid") or form.get("SmsSid"), 64)
        status = _clip(form.get("MessageStatus") or form.get("SmsStatus"), 24)
        if sid is None or status is None:
            return PlainTextResponse("MessageSid and MessageStatus are required", 400)
        code = _clip(form.get("ErrorCode"), 16)
        for wait in (*self.waits, None):
            outcome = await asyncio.to_thread(self._apply_sync, sid, status.lower(), code)
            if outcome is not Outcome.UNKNOWN or wait is None:
                break
            await asyncio.sleep(wait)
        if outcome is Outcome.UNKNOWN:
            # 200 all the same: a non-2xx only makes Twilio retry a SID we will never know.
            log.warning("status %s for unknown message %s: nothing recorded", status, sid)
        log.debug("status %s for %s: %s", status, sid, outcome)
        return Response(status_code=200)

    def _inbound_sync(self, form: ImmutableMultiDict) -> inbound.InboundResult:
        with self.factory.begin() as session:
            return inbound.handle_inbound(
                session,
                provider_sid=form.get("MessageSid") or form.get("SmsSid") or "",
                from_phone=form.get("From", ""),
                to_phone=form.get("To"),
                body=form.get("Body", ""),
                agency=self.agency,
                today=clock.today(self.agency.zone),
                replies_per_hour=self.settings.sms_keyword_replies_per_hour,
            )

    async def inbound(self, request: Request) -> Response:
        form = await self._verified(request)
        if isinstance(form, Response):
            return form
        if not form.get("From"):
            return PlainTextResponse("From is required", 400)
        try:
            result = await asyncio.to_thread(self._inbound_sync, form)
        except ServiceError as exc:
            return PlainTextResponse(exc.message, 400)
        log.info(
            "inbound SMS stored as %s (keyword %s, reply %s, relay %s)",
            result.inbound_id,
            result.keyword,
            result.reply_queued,
            result.relay is not None,
        )
        return Response(EMPTY_TWIML, media_type="text/xml")

    def _ping(self) -> None:
        with self.factory() as session:
            session.execute(text("SELECT 1"))

    async def health(self, request: Request) -> Response:
        try:
            await asyncio.to_thread(self._ping)
        except SQLAlchemyError as exc:
            log.error("health check: database unreachable: %s", exc.__class__.__name__)
            return JSONResponse({"ok": False, "db": "down"}, status_code=503)
        return JSONResponse({"ok": True, "db": "ok"})


def build_web_app(
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    unknown_sid_waits: tuple[float, ...] = UNKNOWN_SID_WAITS,
) -> Starlette:
    """The web app; SettingsError when PUBLIC_BASE_URL or TWILIO_AUTH_TOKEN is missing."""
    check_web_settings(settings)
    hooks = _Webhooks(settings, session_factory, unknown_sid_waits)
    return Starlette(
        routes=[
            Route(STATUS_PATH, hooks.status, methods=["POST"]),
            Route(INBOUND_PATH, hooks.inbound, methods=["POST"]),
            Route(HEALTH_PATH, hooks.health, methods=["GET"]),
        ]
    )


def make_server(app: ASGIApp, settings: Settings, host: str = "0.0.0.0") -> uvicorn.Server:
    """A uvicorn server for app on settings.port; `await server.serve()` in a shared loop."""
    config = uvicorn.Config(
        app, host=host, port=settings.port, log_config=None, lifespan="off", proxy_headers=True
    )
    return uvicorn.Server(config)


@process.entry_point("vasooli web")
def main() -> None:
    """`vasooli web`: serve the webhooks on 0.0.0.0:PORT until stopped."""
    settings = load_settings()
    check_web_settings(settings)
    engine = make_engine(settings.database_url)
    try:
        make_server(build_web_app(settings, make_session_factory(engine)), settings).run()
    finally:
        engine.dispose()
