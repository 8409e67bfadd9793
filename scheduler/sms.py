"""SMS senders: the SmsSender protocol, TwilioSender (the real twilio client) and ConsoleSender.

Errors come out as two kinds the worker acts on (docs/architecture.md, "A message's life"):
RetryableSmsError (HTTP 429, 5xx, timeouts, connection errors: try again later) and
PermanentSmsError (Twilio refused this message for good, e.g. 21211 invalid number).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import IO, Any, Protocol, runtime_checkable

import aiohttp
import httpx
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from db import clock
from db.config import Settings, SettingsError, SmsBackend, require

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.twilio.com"
# Page size of the lost-send check's list (Twilio allows up to 1000).
RECENT_PAGE_SIZE = 100


@dataclass(frozen=True)
class SendResult:
    sid: str
    status: str
    segments: int | None


@dataclass(frozen=True)
class ProviderMessage:
    """A message as the provider reports it (fetch, list)."""

    sid: str
    to: str
    status: str
    error_code: str | None
    error_message: str | None
    date_created: datetime | None
    # Extra, for reconciling a send whose answer was lost: match on body and sending time.
    date_sent: datetime | None = None
    body: str | None = None


class SmsError(Exception):
    """The provider did not take the message (or could not be asked)."""

    def __init__(
        self, message: str, *, code: str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status


class RetryableSmsError(SmsError):
    """Try again later: HTTP 429, 5xx, timeouts, connection errors.

    retry_after: seconds from the Retry-After header, when the provider sent one.
    maybe_sent: the request may have reached the provider (timeout, dropped connection,
    5xx), so the message may exist: reconcile (list_recent) before sending it again.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


class PermanentSmsError(SmsError):
    """The provider refused this message for good (4xx), e.g. 21211, 21614, 21408, 21610."""


class AccountSmsError(SmsError):
    """The provider refused our credentials or account (401, 20003, 20005).

    Not this message's fault: failing it would fail the whole queue for a rotated token.
    """


# Authentication failed / account not active: every message would be refused alike.
ACCOUNT_CODES = frozenset({"20003", "20005"})


@runtime_checkable
class SmsSender(Protocol):
    async def send(
        self, *, to: str, body: str, status_callback: str | None = None
    ) -> SendResult: ...

    async def fetch(self, sid: str) -> ProviderMessage: ...

    async def list_sent(
        self, *, to: str, since: datetime, until: datetime | None = None
    ) -> list[ProviderMessage]: ...

    async def list_recent(self, *, to: str, since: datetime) -> list[ProviderMessage]: ...

    async def aclose(self) -> None: ...


# --- the twilio client, pointed at TWILIO_API_BASE_URL ------------------------------------


def rewrite_url(url: str, api_base_url: str) -> str:
    """https://api.twilio.com/... -> {api_base_url}/...; other URLs unchanged."""
    base = api_base_url.rstrip("/")
    if base == DEFAULT_API_BASE_URL or not url.startswith(DEFAULT_API_BASE_URL + "/"):
        return url
    return base + url[len(DEFAULT_API_BASE_URL) :]


def check_edge_region(api_base_url: str, environ: Mapping[str, str] | None = None) -> None:
    """Refuse TWILIO_EDGE/TWILIO_REGION with a custom base URL.

    The twilio client rewrites api.twilio.com to api.<edge>.<region>.twilio.com by itself;
    our prefix rewrite would then no longer match and requests would silently go to the
    real Twilio instead of the configured server.
    """
    env = os.environ if environ is None else environ
    if api_base_url.rstrip("/") == DEFAULT_API_BASE_URL:
        return
    named = [name for name in ("TWILIO_EDGE", "TWILIO_REGION") if env.get(name)]
    if named:
        raise ValueError(
            f"{' and '.join(named)} cannot be combined with a custom "
            f"TWILIO_API_BASE_URL ({api_base_url}); unset one of them"
        )


@dataclass
class _Exchange:
    """What the HTTP client saw for one call (the twilio exceptions drop the headers)."""

    headers: Mapping[str, str] = field(default_factory=dict)


_EXCHANGE: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar(
    "vasooli_sms_exchange", default=None
)


class BaseUrlHttpClient(TwilioHttpClient):
    """twilio's sync HTTP client, sending api.twilio.com requests to api_base_url."""

    def __init__(self, api_base_url: str = DEFAULT_API_BASE_URL, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_base_url = api_base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        return super().request(method, rewrite_url(url, self.api_base_url), *args, **kwargs)


class AsyncBaseUrlHttpClient(AsyncTwilioHttpClient):
    """twilio's aiohttp client, sending api.twilio.com requests to api_base_url.

    Also applies the client's timeout (the stock async client passes None to aiohttp,
    which means no timeout at all) and opens its session lazily inside the running loop.
    """

    session: aiohttp.ClientSession | None

    def __init__(
        self,
        api_base_url: str = DEFAULT_API_BASE_URL,
        *,
        timeout: float = 10.0,
        max_connections: int = 100,
    ) -> None:
        super().__init__(pool_connections=False, timeout=timeout)
        self.api_base_url = api_base_url
        self.max_connections = max_connections

    async def request(
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        auth: Any = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        if self.session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections)
            self.session = aiohttp.ClientSession(connector=connector)
        if auth is not None:
            # aiohttp 3.12+ deprecates BasicAuth objects; send the same header ourselves.
            headers = {**(headers or {}), "Authorization": _basic_auth(*auth)}
        response = await super().request(
            method,
            rewrite_url(url, self.api_base_url),
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout or self.timeout,
            allow_redirects=allow_redirects,
        )
        exchange = _EXCHANGE.get()
        if exchange is not None:
            exchange.headers = response.headers or {}
        return response

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


def _basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


# --- mapping errors ------------------------------------------------------------------------

_RETRYABLE_NETWORK = (
    asyncio.TimeoutError,  # = TimeoutError; aiohttp's ServerTimeoutError is one too
    aiohttp.ClientConnectionError,  # refused, reset, ServerDisconnectedError
    aiohttp.ClientPayloadError,  # the connection dropped mid-body
    httpx.TransportError,
    ConnectionError,
)
# Errors where the request surely never reached the provider.
_NOT_SENT = (aiohttp.ClientConnectorError, httpx.ConnectError, ConnectionRefusedError)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _twilio_code(code: object) -> str | None:
    # When the body is not Twilio's JSON, the client reuses the HTTP status as the code.
    return str(code) if isinstance(code, int) and code >= 10000 else None


def map_error(exc: BaseException, headers: Mapping[str, str] | None = None) -> SmsError:
    """One SmsError for anything the twilio client raised."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status = int(exc.status)
        code = _twilio_code(exc.code)
        text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)
        if status == 429 or status >= 500:
            retry_after = parse_retry_after((headers or {}).get("Retry-After"))
            return RetryableSmsError(
                text,
                code=code,
                http_status=status,
                retry_after=retry_after,
                maybe_sent=status >= 500,
            )
        if status == 401 or code in ACCOUNT_CODES:
            return AccountSmsError(text, code=code, http_status=status)
        return PermanentSmsError(text, code=code, http_status=status)
    if isinstance(exc, _RETRYABLE_NETWORK):
        kind = "timeout" if isinstance(exc, TimeoutError | httpx.TimeoutException) else "network"
        return RetryableSmsError(
            f"{kind} error: {type(exc).__name__}: {exc}", maybe_sent=not isinstance(exc, _NOT_SENT)
        )
    return SmsError(f"unexpected error: {type(exc).__name__}: {exc}")


# --- TwilioSender ---------------------------------------------------------------------------


class TwilioSender:
    """Sends through the real twilio client's async path (aiohttp), many sends per loop.

    One instance belongs to one event loop (aiohttp's session is opened on first use).
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base_url: str = DEFAULT_API_BASE_URL,
        timeout: float = 10.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if not from_number and not messaging_service_sid:
            raise ValueError("TwilioSender needs from_number or messaging_service_sid")
        env = dict(os.environ if environ is None else environ)
        check_edge_region(api_base_url, env)
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.api_base_url = api_base_url.rstrip("/")
        self._http = AsyncBaseUrlHttpClient(self.api_base_url, timeout=timeout)
        # The client reads TWILIO_EDGE/REGION from this mapping, the one we just checked.
        self._client = Client(account_sid, auth_token, http_client=self._http, environment=env)

    async def send(self, *, to: str, body: str, status_callback: str | None = None) -> SendResult:
        params: dict[str, Any] = {"to": to, "body": body}
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        if self.from_number:
            params["from_"] = self.from_number
        if status_callback:
            params["status_callback"] = status_callback
        message = await self._call(self._client.messages.create_async(**params))
        log.debug("twilio accepted %s (%s)", message.sid, message.status)
        return SendResult(
            sid=message.sid, status=str(message.status), segments=_int_or_none(message.num_segments)
        )

    async def fetch(self, sid: str) -> ProviderMessage:
        message = await self._call(self._client.messages(sid).fetch_async())
        return _provider_message(message)

    async def list_sent(
        self, *, to: str, since: datetime, until: datetime | None = None
    ) -> list[ProviderMessage]:
        """Messages to `to` sent (or still queued) in [since, until], newest first."""
        since_utc = _utc(since).replace(microsecond=0)  # Twilio's dates have whole seconds
        until_utc = _utc(until) if until else None
        kwargs: dict[str, Any] = {"to": to, "date_sent_after": since_utc, "page_size": 100}
        if until_utc:
            kwargs["date_sent_before"] = until_utc + timedelta(seconds=1)
        found = await self._call(self._client.messages.list_async(**kwargs))
        messages = [_provider_message(m) for m in found]
        # Filter again here: Twilio documents these filters at day granularity.
        return [m for m in messages if _within(m, since_utc, until_utc)]

    async def list_recent(self, *, to: str, since: datetime) -> list[ProviderMessage]:
        """Messages to `to` created at or after since, newest first, sent or not yet.

        No DateSent filter: a message Twilio accepted but has not sent (queued behind a
        Messaging Service) has no DateSent and such a filter would hide it, so the lost-send
        check would send it again. Creation times are compared here instead, and paging stops
        at the first older message (Twilio lists newest first). A failed page raises SmsError:
        "could not ask" must never read as "not sent".
        """
        since_utc = _utc(since).replace(microsecond=0)  # Twilio's dates have whole seconds
        return await self._call(self._recent(to, since_utc))

    async def _recent(self, to: str, since: datetime) -> list[ProviderMessage]:
        found: list[ProviderMessage] = []
        try:
            stream = await self._client.messages.stream_async(to=to, page_size=RECENT_PAGE_SIZE)
            async for message in stream:
                created = message.date_created
                if created is not None and created < since:
                    break
                found.append(_provider_message(message))
        except TwilioRestException:
            raise
        except TwilioException as exc:
            raise _page_error(exc) from exc
        return found

    async def _call(self, awaitable: Any) -> Any:
        exchange = _Exchange()
        token = _EXCHANGE.set(exchange)
        try:
            return await awaitable
        except (TwilioRestException, TwilioServiceException, *_RETRYABLE_NETWORK) as exc:
            error = map_error(exc, exchange.headers)
            log.info(
                "twilio call failed: %s (code %s, HTTP %s)",
                error.message,
                error.code,
                error.http_status,
            )
            raise error from exc
        finally:
            _EXCHANGE.reset(token)

    async def aclose(self) -> None:
        await self._http.close()


def _page_error(exc: TwilioException) -> SmsError:
    """A list page that failed (the client raises a bare TwilioException with the response)."""
    response = exc.args[1] if len(exc.args) > 1 else None
    status = getattr(response, "status_code", None)
    text = f"listing messages failed (HTTP {status})"
    if status is None or status == 429 or status >= 500:
        return RetryableSmsError(text, http_status=status)
    return SmsError(text, http_status=status)


def _utc(moment: datetime) -> datetime:
    # twilio's serializer formats the datetime as given, without converting it to UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _within(message: ProviderMessage, since: datetime, until: datetime | None) -> bool:
    moment = message.date_sent or message.date_created
    if moment is None:
        return True  # cannot tell: let the caller decide
    return moment >= since and (until is None or moment <= until)


def _int_or_none(value: object) -> int | None:
    if not isinstance(value, str | int | float):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _provider_message(message: Any) -> ProviderMessage:
    return ProviderMessage(
        sid=message.sid,
        to=message.to,
        status=str(message.status),
        error_code=str(message.error_code) if message.error_code is not None else None,
        error_message=message.error_message,
        date_created=message.date_created,
        date_sent=message.date_sent,
        body=message.body,
    )


# --- ConsoleSender -----------------------------------------------------------------------


@dataclass(frozen=True)
class ConsoleMessage:
    sid: str
    to: str
    body: str
    sent_at: datetime


def mask_phone(phone: str) -> str:
    """+919876543210 -> +91******3210: enough to tell numbers apart on a shared screen."""
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


class ConsoleSender:
    """Prints one line per message instead of sending it, and remembers what it printed."""

    def __init__(
        self, out: IO[str] | None = None, *, on_send: Callable[[ConsoleMessage], None] | None = None
    ) -> None:
        self._out = out
        self._on_send = on_send
        self.sent: list[ConsoleMessage] = []

    async def send(self, *, to: str, body: str, status_callback: str | None = None) -> SendResult:
        message = ConsoleMessage("CONSOLE" + uuid.uuid4().hex, to, body, clock.utcnow())
        self.sent.append(message)
        out = self._out or sys.stdout  # looked up now, so pytest's capture sees it
        one_line = " ⏎ ".join(body.splitlines())
        print(f"SMS to {mask_phone(to)}: {one_line}", file=out, flush=True)
        if self._on_send is not None:
            self._on_send(message)
        return SendResult(sid=message.sid, status="delivered", segments=None)

    async def fetch(self, sid: str) -> ProviderMessage:
        if not sid.startswith("CONSOLE"):
            raise PermanentSmsError(f"unknown message {sid}", code="20404", http_status=404)
        known = next((m for m in self.sent if m.sid == sid), None)
        return ProviderMessage(
            sid=sid,
            to=known.to if known else "",
            status="delivered",
            error_code=None,
            error_message=None,
            date_created=known.sent_at if known else None,
            date_sent=known.sent_at if known else None,
            body=known.body if known else None,
        )

    async def list_sent(
        self, *, to: str, since: datetime, until: datetime | None = None
    ) -> list[ProviderMessage]:
        return [
            await self.fetch(m.sid)
            for m in reversed(self.sent)
            if m.to == to
            and m.sent_at >= _utc(since)
            and (until is None or m.sent_at <= _utc(until))
        ]

    async def list_recent(self, *, to: str, since: datetime) -> list[ProviderMessage]:
        return await self.list_sent(to=to, since=since)

    async def aclose(self) -> None:
        return None


# --- from settings ------------------------------------------------------------------------


def make_sender(settings: Settings) -> SmsSender:
    """The sender SMS_BACKEND asks for; SettingsError (one line) when settings are missing."""
    if settings.sms_backend != SmsBackend.TWILIO:
        return ConsoleSender()
    require(settings, "twilio_account_sid", "twilio_auth_token")
    if not settings.twilio_from_number and not settings.twilio_messaging_service_sid:
        raise SettingsError(
            "setting TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID is "
            "required when SMS_BACKEND is twilio"
        )
    assert settings.twilio_account_sid and settings.twilio_auth_token  # checked by require()
    try:
        return TwilioSender(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_base_url=settings.twilio_api_base_url,
        )
    except ValueError as exc:
        raise SettingsError(f"setting {exc}") from None
