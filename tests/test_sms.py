"""SMS senders: TwilioSender (the real twilio client, async) against the sandbox; ConsoleSender;
make_sender from settings."""

from __future__ import annotations

import asyncio
import io
import re
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from db import clock
from db.config import Settings, SettingsError
from scheduler import sms
from scheduler.sandbox import CallbackTiming, TwilioSandbox
from scheduler.sandbox.server import ServerThread
from scheduler.sms import (
    AccountSmsError,
    ConsoleMessage,
    ConsoleSender,
    PermanentSmsError,
    RetryableSmsError,
    SmsSender,
    TwilioSender,
    make_sender,
    mask_phone,
    parse_retry_after,
    rewrite_url,
)

pytestmark = pytest.mark.e2e

TO = "+919876500001"
OTHER = "+919876500002"
SID = re.compile(r"^SM[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TwilioSandbox]:
    with TwilioSandbox(seed=3) as sb:
        yield sb


def twilio_sender(sb: TwilioSandbox, **overrides: object) -> TwilioSender:
    options: dict[str, object] = {
        "from_number": sb.phone_number,
        "api_base_url": sb.base_url,
        "timeout": 5.0,
        "environ": {},
    }
    options.update(overrides)
    token = str(options.pop("auth_token", sb.auth_token))
    return TwilioSender(sb.account_sid, token, **options)  # type: ignore[arg-type]


@pytest.fixture
async def sender(sb: TwilioSandbox) -> AsyncIterator[TwilioSender]:
    s = twilio_sender(sb)
    yield s
    await s.aclose()


# --- sending ------------------------------------------------------------------------------


async def test_send_returns_sid_status_and_segments(
    sb: TwilioSandbox, sender: TwilioSender
) -> None:
    english = await sender.send(to=TO, body="Your EMI of Rs 2,500 is due on 5 May.")
    hindi = await sender.send(to=TO, body="आपकी किस्त देय है। " * 5)

    assert SID.match(english.sid) and english.status == "queued" and english.segments == 1
    assert hindi.segments == 2
    assert [m.sid for m in sb.messages_to(TO)] == [english.sid, hindi.sid]
    assert isinstance(sender, SmsSender)


async def test_send_through_a_messaging_service(sb: TwilioSandbox) -> None:
    service = "MG" + "2" * 32
    s = twilio_sender(sb, from_number=None, messaging_service_sid=service)
    try:
        result = await s.send(to=TO, body="Hi")
    finally:
        await s.aclose()
    assert result.status == "accepted"
    assert sb.messages_to(TO)[0].messaging_service_sid == service


@pytest.mark.parametrize("code", [21211, 21614, 21408, 21610])
async def test_refused_numbers_are_permanent_with_the_code(
    sb: TwilioSandbox, sender: TwilioSender, code: int
) -> None:
    sb.fail_number(TO, code=code)
    with pytest.raises(PermanentSmsError) as raised:
        await sender.send(to=TO, body="Hi")
    assert (raised.value.code, raised.value.http_status) == (str(code), 400)
    assert raised.value.message
    assert sb.created_count(TO) == 0


async def test_invalid_number_from_validation_is_permanent(sender: TwilioSender) -> None:
    with pytest.raises(PermanentSmsError) as raised:
        await sender.send(to="98765", body="Hi")
    assert raised.value.code == "21211"


async def test_wrong_token_is_an_account_error_20003(sb: TwilioSandbox) -> None:
    s = twilio_sender(sb, auth_token="wrong")
    try:
        with pytest.raises(AccountSmsError) as raised:
            await s.send(to=TO, body="Hi")
    finally:
        await s.aclose()
    assert (raised.value.code, raised.value.http_status) == ("20003", 401)


async def test_429_is_retryable_with_retry_after(sb: TwilioSandbox, sender: TwilioSender) -> None:
    sb.script(http_status=429, code=20429, retry_after=7)
    sb.script(429)

    with pytest.raises(RetryableSmsError) as first:
        await sender.send(to=TO, body="Hi")
    with pytest.raises(RetryableSmsError) as second:
        await sender.send(to=TO, body="Hi")

    assert (first.value.http_status, first.value.code) == (429, "20429")
    assert first.value.retry_after == 7.0 and first.value.maybe_sent is False
    assert second.value.retry_after is None


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(
    sb: TwilioSandbox, sender: TwilioSender, status: int
) -> None:
    sb.script(status)
    with pytest.raises(RetryableSmsError) as raised:
        await sender.send(to=TO, body="Hi")
    assert raised.value.http_status == status and raised.value.maybe_sent
    assert (await sender.send(to=TO, body="Hi")).sid  # the next call goes through


async def test_timeout_is_retryable(sb: TwilioSandbox) -> None:
    sb.script("timeout")
    s = twilio_sender(sb, timeout=0.3)
    try:
        with pytest.raises(RetryableSmsError) as raised:
            await s.send(to=TO, body="Hi")
    finally:
        await s.aclose()
    assert raised.value.maybe_sent and raised.value.http_status is None
    assert "timeout" in raised.value.message


async def test_disconnect_is_retryable(sb: TwilioSandbox, sender: TwilioSender) -> None:
    sb.script("disconnect")
    with pytest.raises(RetryableSmsError) as raised:
        await sender.send(to=TO, body="Hi")
    assert raised.value.maybe_sent
    assert (await sender.send(to=TO, body="Hi")).sid


async def test_connection_refused_is_retryable_and_surely_not_sent(sb: TwilioSandbox) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = twilio_sender(sb, api_base_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(RetryableSmsError) as raised:
            await s.send(to=TO, body="Hi")
    finally:
        await s.aclose()
    assert raised.value.maybe_sent is False


async def test_a_timed_out_send_is_found_by_list_sent(sb: TwilioSandbox) -> None:
    """The reconcile path: Twilio took the message but the answer never came."""
    since = clock.utcnow()
    sb.script("timeout", created=True)
    s = twilio_sender(sb, timeout=0.3)
    try:
        with pytest.raises(RetryableSmsError):
            await s.send(to=TO, body="Reminder #42")
        found = await s.list_sent(to=TO, since=since)
    finally:
        await s.aclose()
    assert [(m.to, m.body) for m in found] == [(TO, "Reminder #42")]
    assert sb.created_count(TO) == 1


async def test_list_recent_sees_a_message_accepted_but_not_yet_sent(sb: TwilioSandbox) -> None:
    """Twilio's DateSent filters hide a queued message; listing by To and creation does not."""
    since = clock.utcnow()
    sb.callback_timing = CallbackTiming(hold=True)  # queued at Twilio, no date_sent yet
    sb.script("timeout", created=True)
    s = twilio_sender(sb, timeout=0.3)
    try:
        with pytest.raises(RetryableSmsError):
            await s.send(to=TO, body="Reminder #43")
        by_date_sent = await s.list_sent(to=TO, since=since)
        recent = await s.list_recent(to=TO, since=since)
        later = await s.list_recent(to=TO, since=since + timedelta(minutes=5))
    finally:
        await s.aclose()
        sb.callback_timing = CallbackTiming()
    assert by_date_sent == []  # what the old check saw: "not sent", so it sent again
    assert [(m.body, m.status, m.date_sent) for m in recent] == [("Reminder #43", "queued", None)]
    assert later == [] and sb.created_count(TO) == 1


async def test_list_recent_pages_through_every_page(
    sb: TwilioSandbox, sender: TwilioSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    sids = [(await sender.send(to=TO, body=f"n{i}")).sid for i in range(5)]
    await sender.send(to=OTHER, body="someone else")
    monkeypatch.setattr(sms, "RECENT_PAGE_SIZE", 2)
    found = await sender.list_recent(to=TO, since=clock.utcnow() - timedelta(1))
    assert sorted(m.sid for m in found) == sorted(sids)
    assert sb.request_count("list") == 3


async def test_a_failed_list_page_is_an_error_not_an_empty_list(
    sb: TwilioSandbox, sender: TwilioSender
) -> None:
    await sender.send(to=TO, body="Hi")
    sb.script(500, on="list")
    with pytest.raises(RetryableSmsError):
        await sender.list_recent(to=TO, since=clock.utcnow() - timedelta(minutes=1))


async def test_many_sends_run_concurrently_on_one_loop(
    sb: TwilioSandbox, sender: TwilioSender
) -> None:
    sb.latency = 0.05
    numbers = [f"+91987650{i:04d}" for i in range(40)]

    results = await asyncio.gather(*(sender.send(to=n, body="Hi") for n in numbers))

    assert len({r.sid for r in results}) == 40
    assert all(sb.created_count(n) == 1 for n in numbers)


# --- fetch and list -----------------------------------------------------------------------


async def test_fetch_reports_delivery(sb: TwilioSandbox, sender: TwilioSender) -> None:
    sb.set_delivery(OTHER, "undelivered", error_code=30005)
    ok = await sender.send(to=TO, body="Hi")
    bad = await sender.send(to=OTHER, body="Hi")
    await sb.wait_callbacks_async()

    delivered, undelivered = await sender.fetch(ok.sid), await sender.fetch(bad.sid)

    assert (delivered.sid, delivered.to, delivered.status) == (ok.sid, TO, "delivered")
    assert delivered.error_code is None and delivered.date_created is not None
    assert (undelivered.status, undelivered.error_code) == ("undelivered", "30005")
    assert undelivered.error_message == "Unknown destination handset"


async def test_fetch_unknown_sid_is_permanent_20404(sender: TwilioSender) -> None:
    with pytest.raises(PermanentSmsError) as raised:
        await sender.fetch("SM" + "f" * 32)
    assert (raised.value.code, raised.value.http_status) == ("20404", 404)


async def test_list_sent_by_number_and_window(sb: TwilioSandbox, sender: TwilioSender) -> None:
    old = await sender.send(to=TO, body="old")
    await sb.wait_callbacks_async()  # sent (date_sent) before the clock moves
    clock.advance(timedelta(days=3))
    start = clock.utcnow()
    new = await sender.send(to=TO, body="new")
    await sender.send(to=OTHER, body="someone else")
    await sb.wait_callbacks_async()
    clock.advance(timedelta(days=3))
    later = await sender.send(to=TO, body="later")

    window = await sender.list_sent(
        to=TO, since=start - timedelta(minutes=1), until=start + timedelta(days=1)
    )
    since_start = await sender.list_sent(to=TO, since=start)
    everything = await sender.list_sent(to=TO, since=start - timedelta(days=30))

    assert [m.sid for m in window] == [new.sid]
    assert [m.sid for m in since_start] == [later.sid, new.sid]
    assert [m.sid for m in everything] == [later.sid, new.sid, old.sid]


async def test_list_sent_takes_aware_local_times(sb: TwilioSandbox, sender: TwilioSender) -> None:
    sent = await sender.send(to=TO, body="Hi")
    kolkata_now = clock.utcnow().astimezone(ZoneInfo("Asia/Kolkata"))

    found = await sender.list_sent(to=TO, since=kolkata_now - timedelta(minutes=5))
    assert [m.sid for m in found] == [sent.sid]
    assert await sender.list_sent(to=TO, since=kolkata_now + timedelta(minutes=5)) == []


async def test_status_callbacks_from_a_real_send_validate(
    sb: TwilioSandbox, sender: TwilioSender
) -> None:
    seen: list[tuple[str, bool]] = []
    validator = RequestValidator(sb.auth_token)

    async def status(request: Request) -> Response:
        params = dict(parse_qsl((await request.body()).decode()))
        valid = validator.validate(
            str(request.url), params, request.headers.get("X-Twilio-Signature", "")
        )
        seen.append((params["MessageStatus"], valid))
        return Response(status_code=204)

    app = Starlette(routes=[Route("/twilio/status", status, methods=["POST"])])
    with ServerThread(app) as web:
        await sender.send(to=TO, body="Hi", status_callback=f"{web.base_url}/twilio/status")
        await sb.wait_callbacks_async()
    assert seen == [("sent", True), ("delivered", True)]


# --- construction, URLs, edge/region ------------------------------------------------------


def test_rewrite_url_only_touches_the_twilio_api_host() -> None:
    base = "http://127.0.0.1:8123"
    assert (
        rewrite_url("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json", base)
        == f"{base}/2010-04-01/Accounts/AC1/Messages.json"
    )
    assert (
        rewrite_url("https://api.twilio.com/x", "https://api.twilio.com/")
        == "https://api.twilio.com/x"
    )
    assert (
        rewrite_url("https://messaging.twilio.com/v1/x", base)
        == "https://messaging.twilio.com/v1/x"
    )
    assert (
        rewrite_url("https://api.twilio.com.evil.example/x", base)
        == "https://api.twilio.com.evil.example/x"
    )


@pytest.mark.parametrize("name", ["TWILIO_EDGE", "TWILIO_REGION"])
def test_edge_or_region_with_a_custom_base_url_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match=name) as raised:
        TwilioSender(
            "AC1",
            "t",
            from_number="+15005550006",
            api_base_url="http://127.0.0.1:9",
            environ={name: "x1"},
        )
    assert "\n" not in str(raised.value)


def test_edge_and_region_stay_allowed_with_twilio_itself() -> None:
    sender = TwilioSender(
        "AC1",
        "t",
        from_number="+15005550006",
        environ={"TWILIO_EDGE": "sydney", "TWILIO_REGION": "au1"},
    )
    assert sender.api_base_url == "https://api.twilio.com"


def test_a_sender_needs_a_from_number_or_service() -> None:
    with pytest.raises(ValueError, match="from_number or messaging_service_sid"):
        TwilioSender("AC1", "t", environ={})


def test_parse_retry_after_takes_seconds_or_a_date() -> None:
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after("12") == 12.0
    assert 25 <= (parse_retry_after(soon) or 0) <= 30
    assert parse_retry_after(None) is None and parse_retry_after("later") is None


# --- ConsoleSender ------------------------------------------------------------------------


async def test_console_sender_prints_one_masked_line_and_reports_delivered() -> None:
    out = io.StringIO()
    seen: list[ConsoleMessage] = []
    sender = ConsoleSender(out, on_send=seen.append)

    result = await sender.send(to="+919876543210", body="Namaste\nPay today")
    fetched = await sender.fetch(result.sid)

    assert out.getvalue() == "SMS to +91******3210: Namaste ⏎ Pay today\n"
    assert re.match(r"^CONSOLE[0-9a-f]{32}$", result.sid) and result.status == "delivered"
    assert [m.sid for m in seen] == [result.sid]
    assert (fetched.status, fetched.to, fetched.body) == (
        "delivered",
        "+919876543210",
        "Namaste\nPay today",
    )
    listed = await sender.list_sent(to="+919876543210", since=clock.utcnow() - timedelta(1))
    assert [m.sid for m in listed] == [result.sid]
    with pytest.raises(PermanentSmsError):
        await sender.fetch("SM" + "0" * 32)
    await sender.aclose()


async def test_console_sender_writes_to_stdout_by_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    await ConsoleSender().send(to="+919876543210", body="Hi")
    assert capsys.readouterr().out == "SMS to +91******3210: Hi\n"


def test_mask_phone_keeps_country_code_and_last_digits() -> None:
    assert mask_phone("+15005550006") == "+15*****0006"
    assert mask_phone("12345") == "*****"


# --- make_sender ---------------------------------------------------------------------------


def settings_for(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def clean_twilio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_FROM_NUMBER",
        "TWILIO_MESSAGING_SERVICE_SID",
        "TWILIO_API_BASE_URL",
        "TWILIO_EDGE",
        "TWILIO_REGION",
        "SMS_BACKEND",
    ):
        monkeypatch.delenv(name, raising=False)


def test_make_sender_console_without_credentials(clean_twilio_env: None) -> None:
    assert isinstance(make_sender(settings_for()), ConsoleSender)


async def test_make_sender_builds_a_working_twilio_sender(
    clean_twilio_env: None, sb: TwilioSandbox
) -> None:
    sender = make_sender(
        settings_for(
            twilio_account_sid=sb.account_sid,
            twilio_auth_token=sb.auth_token,
            twilio_from_number=sb.phone_number,
            twilio_api_base_url=sb.base_url,
        )
    )
    try:
        assert isinstance(sender, TwilioSender)
        assert SID.match((await sender.send(to=TO, body="Hi")).sid)
    finally:
        await sender.aclose()


def test_make_sender_without_a_sender_number_is_one_line(clean_twilio_env: None) -> None:
    with pytest.raises(SettingsError) as raised:
        make_sender(
            settings_for(sms_backend="twilio", twilio_account_sid="AC1", twilio_auth_token="t")
        )
    assert "TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_make_sender_without_credentials_names_the_setting(clean_twilio_env: None) -> None:
    with pytest.raises(SettingsError, match="TWILIO_ACCOUNT_SID"):
        make_sender(settings_for(sms_backend="twilio", twilio_from_number="+15005550006"))


def test_make_sender_refuses_edge_with_a_custom_base_url(
    clean_twilio_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    with pytest.raises(SettingsError, match="TWILIO_REGION") as raised:
        make_sender(
            settings_for(
                twilio_account_sid="AC1",
                twilio_auth_token="t",
                twilio_from_number="+15005550006",
                twilio_api_base_url="http://127.0.0.1:9",
            )
        )
    assert "\n" not in str(raised.value)
