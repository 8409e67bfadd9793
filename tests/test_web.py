"""The web app: signed Twilio status callbacks and inbound SMS, and the health check.

Signature cases run in-process (Starlette's TestClient); the end-to-end ones serve the app
with uvicorn on a free port and let the Twilio sandbox post its own signed webhooks.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from db.config import Settings, SettingsError
from db.models import (
    Borrower,
    InboundMessage,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    Suppression,
)
from db.services.sms import outbox
from db.services.sms.inbound import pending_relays
from db.session import make_engine, make_session_factory
from scheduler import web
from scheduler.sandbox import CallbackTiming, TwilioSandbox
from scheduler.sandbox.server import ServerThread
from scheduler.sms import TwilioSender
from tests.factories import make_borrower, make_loan, make_staff

PUBLIC = "https://vasooli.example.com"
TOKEN = "0123456789abcdef" * 2
AGENCY_PHONE = "+919000000001"
S = MessageStatus


def _phone() -> str:
    return f"+9195{random.randrange(10**8):08d}"


def _sid() -> str:
    return f"SM{uuid.uuid4().hex}"


def _settings(settings: Settings, public: str, token: str = TOKEN) -> Settings:
    return settings.model_copy(
        update={
            "public_base_url": public,
            "twilio_auth_token": SecretStr(token),
            "agency_name": "Test Agency",
            "agency_phone": AGENCY_PHONE,
        }
    )


def _asgi_client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


@pytest.fixture
async def client(
    settings: Settings, committed: sessionmaker[Session]
) -> AsyncIterator[httpx.AsyncClient]:
    app = web.build_web_app(_settings(settings, PUBLIC), committed, unknown_sid_waits=(0.01,))
    async with _asgi_client(app) as http:
        yield http


async def _post(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    *,
    url: str | None = None,
    token: str = TOKEN,
    signed: bool = True,
) -> httpx.Response:
    signature = RequestValidator(token).compute_signature(url or PUBLIC + path, params)
    headers = {"X-Twilio-Signature": signature} if signed else {}
    return await client.post(
        path,
        content=urlencode(params),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )


async def _code(client: httpx.AsyncClient, path: str, params: dict[str, str], **kw) -> int:
    return (await _post(client, path, params, **kw)).status_code


def _sent_message(factory: sessionmaker[Session], phone: str | None = None) -> tuple[int, str]:
    """A message the worker has handed to Twilio: (id, SID)."""
    sid = _sid()
    with factory.begin() as s:
        borrower = make_borrower(s, phone=phone or _phone())
        info = outbox.queue_message(
            s,
            to=borrower.phone,
            body="Hello",
            kind=MessageKind.NOTICE,
            idempotency_key=f"t:{sid}",
            borrower_id=borrower.id,
        )
        assert outbox.mark_sent(s, message_id=info.id, sid=sid, segments=1)
    return info.id, sid


def _message(factory: sessionmaker[Session], message_id: int) -> tuple[Message, list[tuple]]:
    with factory() as s:
        m = s.get(Message, message_id)
        events = s.execute(
            select(MessageEvent.status, MessageEvent.source, MessageEvent.detail)
            .where(MessageEvent.message_id == message_id)
            .order_by(MessageEvent.id)
        ).all()
        return m, [tuple(e) for e in events]


def _scalar(factory: sessionmaker[Session], stmt):
    # A short session each time: on SQLite an open one would hold the write lock.
    with factory() as s:
        return s.scalar(stmt)


def _status(sid: str, status: str, code: str | None = None) -> dict[str, str]:
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "5a" * 16,
        "To": "+919500000000",
    }
    return params | ({"ErrorCode": code} if code else {})


# --- status callbacks: signatures ------------------------------------------------------


@pytest.mark.parametrize("how", ["unsigned", "other token", "internal url", "tampered"])
async def test_badly_signed_status_is_403_and_writes_nothing(client, committed, how: str) -> None:
    message_id, sid = _sent_message(committed)
    before = _message(committed, message_id)[1]
    params = _status(sid, "delivered")
    if how == "tampered":  # signed for "failed", sent as "delivered"
        signature = RequestValidator(TOKEN).compute_signature(
            PUBLIC + web.STATUS_PATH, _status(sid, "failed")
        )
        response = await client.post(
            web.STATUS_PATH, data=params, headers={"X-Twilio-Signature": signature}
        )
    else:
        response = await _post(
            client,
            web.STATUS_PATH,
            params,
            signed=how != "unsigned",
            token="f" * 32 if how == "other token" else TOKEN,
            url="http://testserver/twilio/status" if how == "internal url" else None,
        )
    assert response.status_code == 403
    m, events = _message(committed, message_id)
    assert m.status is S.SENT and events == before


async def test_signed_status_moves_the_message_and_a_replay_changes_nothing(
    client, committed
) -> None:
    message_id, sid = _sent_message(committed)
    assert await _code(client, web.STATUS_PATH, _status(sid, "delivered")) == 200
    first, events = _message(committed, message_id)
    assert first.status is S.DELIVERED and events[-1][:2] == ("delivered", "callback")
    assert await _code(client, web.STATUS_PATH, _status(sid, "delivered")) == 200
    again, replayed = _message(committed, message_id)
    assert again.status is S.DELIVERED and again.delivered_at == first.delivered_at
    assert len(replayed) == len(events) + 1 and "ignored" in replayed[-1][2]
    assert [e[0] for e in replayed].count("delivered") == 2  # recorded, applied once
    assert sum(1 for e in replayed if e[2] == "provider: delivered") == 1


async def test_unknown_sid_is_200_and_records_nothing(client, committed) -> None:
    sid = _sid()
    assert await _code(client, web.STATUS_PATH, _status(sid, "delivered")) == 200
    with committed() as s:
        assert (
            s.scalar(select(func.count()).select_from(Message).where(Message.provider_sid == sid))
            == 0
        )
        assert (
            s.scalar(
                select(func.count())
                .select_from(MessageEvent)
                .where(MessageEvent.detail.contains(sid))
            )
            == 0
        )


async def test_a_status_twilio_never_sends_changes_nothing(client, committed) -> None:
    message_id, sid = _sent_message(committed)
    assert await _code(client, web.STATUS_PATH, _status(sid, "exploded")) == 200
    m, events = _message(committed, message_id)
    assert m.status is S.SENT and events[-1][0] == "exploded" and "ignored" in events[-1][2]


async def test_delivered_then_sent_stays_delivered(client, committed) -> None:
    message_id, sid = _sent_message(committed)
    await _post(client, web.STATUS_PATH, _status(sid, "delivered"))
    assert await _code(client, web.STATUS_PATH, _status(sid, "sent")) == 200
    assert _message(committed, message_id)[0].status is S.DELIVERED


async def test_undelivered_30006_suppresses_the_number(client, committed) -> None:
    phone = _phone()
    message_id, sid = _sent_message(committed, phone)
    await _post(client, web.STATUS_PATH, _status(sid, "undelivered", "30006"))
    m, _ = _message(committed, message_id)
    assert (m.status, m.error_code) == (S.UNDELIVERED, "30006")
    assert m.failure_reason == "landline or unreachable carrier"
    with committed() as s:
        assert s.get(Suppression, phone).error_code == "30006"


async def test_30003_suppresses_only_on_the_fifth_in_a_row(client, committed) -> None:
    phone = _phone()
    for n in range(1, 6):
        sid = _sid()
        with committed.begin() as s:
            info = outbox.queue_message(
                s, to=phone, body="Hi", kind=MessageKind.NOTICE, idempotency_key=f"t:{sid}"
            )
            assert outbox.mark_sent(s, message_id=info.id, sid=sid, segments=1)
        await _post(client, web.STATUS_PATH, _status(sid, "undelivered", "30003"))
        with committed() as s:
            row = s.get(Suppression, phone)
            assert (row is not None) is (n == 5), n
    assert (row.kind, row.error_code) == ("unreachable", "30003")


async def test_the_query_string_is_part_of_what_is_signed(client, committed) -> None:
    message_id, sid = _sent_message(committed)
    path = web.STATUS_PATH + "?attempt=2"
    unsigned_query = await _post(
        client, path, _status(sid, "delivered"), url=PUBLIC + web.STATUS_PATH
    )
    assert unsigned_query.status_code == 403
    assert await _code(client, path, _status(sid, "delivered"), url=PUBLIC + path) == 200
    assert _message(committed, message_id)[0].status is S.DELIVERED


async def test_missing_fields_and_huge_bodies_are_refused(client) -> None:
    assert await _code(client, web.STATUS_PATH, {"MessageStatus": "sent"}) == 400
    big = {"Body": "x" * (web.MAX_FORM_BYTES + 1), "From": _phone(), "MessageSid": _sid()}
    assert await _code(client, web.INBOUND_PATH, big) == 413


# --- inbound SMS -------------------------------------------------------------------------


def _inbound(phone: str, body: str, sid: str | None = None) -> dict[str, str]:
    sid = sid or _sid()
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "From": phone,
        "To": "+15005550006",
        "Body": body,
        "AccountSid": "AC" + "5a" * 16,
        "NumMedia": "0",
    }


def _inbound_rows(factory: sessionmaker[Session], sid: str) -> int:
    with factory() as s:
        return s.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.provider_sid == sid)
        )


async def test_unsigned_inbound_is_403_and_stores_nothing(client, committed) -> None:
    params = _inbound(_phone(), "STOP")
    assert await _code(client, web.INBOUND_PATH, params, signed=False) == 403
    assert await _code(client, web.INBOUND_PATH, params, token="e" * 32) == 403
    assert _inbound_rows(committed, params["MessageSid"]) == 0


async def test_signed_stop_opts_out_and_answers_empty_twiml(client, committed) -> None:
    with committed.begin() as s:
        phone = make_borrower(s, phone=_phone()).phone
    params = _inbound(phone, "STOP")
    response = await _post(client, web.INBOUND_PATH, params)
    assert response.status_code == 200 and response.text == web.EMPTY_TWIML
    assert response.headers["content-type"].startswith("text/xml")
    with committed() as s:
        assert s.scalar(select(Borrower).where(Borrower.phone == phone)).opted_out_at is not None
    assert await _code(client, web.INBOUND_PATH, params) == 200  # Twilio's retry
    assert _inbound_rows(committed, params["MessageSid"]) == 1


async def test_inbound_without_from_is_400(client) -> None:
    params = {"MessageSid": _sid(), "Body": "hi"}
    assert await _code(client, web.INBOUND_PATH, params) == 400


# --- health and start-up -----------------------------------------------------------------


async def test_healthz_reports_the_database(client, settings, tmp_path) -> None:
    assert (await client.get(web.HEALTH_PATH)).json() == {"ok": True, "db": "ok"}
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    app = web.build_web_app(_settings(settings, PUBLIC), make_session_factory(engine))
    async with _asgi_client(app) as down:
        response = await down.get(web.HEALTH_PATH)
    assert (response.status_code, response.json()) == (503, {"ok": False, "db": "down"})


def test_the_app_refuses_to_start_without_public_url_or_token(settings) -> None:
    with pytest.raises(SettingsError, match="PUBLIC_BASE_URL"):
        web.build_web_app(
            settings.model_copy(update={"twilio_auth_token": SecretStr(TOKEN)}),
            make_session_factory(make_engine("sqlite://")),
        )
    with pytest.raises(SettingsError, match="TWILIO_AUTH_TOKEN"):
        web.build_web_app(
            settings.model_copy(update={"public_base_url": PUBLIC}),
            make_session_factory(make_engine("sqlite://")),
        )


def test_main_exits_2_with_one_line(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for name in ("PUBLIC_BASE_URL", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(SystemExit) as exited:
        web.main()
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and "\n" not in err and "PUBLIC_BASE_URL" in err


# --- end to end: uvicorn on a free port, the sandbox posting its own signed webhooks ------


@dataclass
class Live:
    sandbox: TwilioSandbox
    settings: Settings
    factory: sessionmaker[Session]

    async def send(self, message_id: int | None, to: str) -> str:
        """Send like the worker: through the real twilio client, then record the SID."""
        sender = TwilioSender(
            self.sandbox.account_sid,
            self.sandbox.auth_token,
            from_number=self.sandbox.phone_number,
            api_base_url=self.sandbox.base_url,
        )
        try:
            result = await sender.send(
                to=to, body="Hello", status_callback=web.status_callback_url(self.settings)
            )
        finally:
            await sender.aclose()
        if message_id is not None:
            with self.factory.begin() as s:
                outbox.mark_sent(s, message_id=message_id, sid=result.sid, segments=result.segments)
        return result.sid


@contextmanager
def _live(
    settings: Settings, factory: sessionmaker[Session], timing: CallbackTiming
) -> Iterator[Live]:
    holder: dict[str, object] = {}

    async def app(scope, receive, send):  # the port is known only once uvicorn listens
        await holder["app"](scope, receive, send)

    with ServerThread(app, name="vasooli-web-test") as server:
        sandbox = TwilioSandbox(
            callback_timing=timing, inbound_url=server.base_url + web.INBOUND_PATH
        )
        live_settings = _settings(settings, server.base_url, sandbox.auth_token)
        holder["app"] = web.build_web_app(live_settings, factory, unknown_sid_waits=(0.05,))
        with sandbox:
            yield Live(sandbox, live_settings, factory)


def _queued(factory: sessionmaker[Session], phone: str) -> int:
    with factory.begin() as s:
        borrower = make_borrower(s, phone=phone)
        info = outbox.queue_message(
            s,
            to=phone,
            body="Hello",
            kind=MessageKind.NOTICE,
            idempotency_key=f"e2e:{_sid()}",
            borrower_id=borrower.id,
        )
        return info.id


@pytest.mark.e2e
async def test_e2e_callbacks_delivered_replayed_and_unknown(settings, committed) -> None:
    with _live(settings, committed, CallbackTiming(hold=True)) as live:
        phone = _phone()
        message_id = _queued(committed, phone)
        await live.send(message_id, phone)
        live.sandbox.flush_callbacks()  # only now: the SID is committed, as after mark_sent
        live.sandbox.wait_callbacks()
        callbacks = live.sandbox.callbacks
        assert [c.params["MessageStatus"] for c in callbacks] == ["sent", "delivered"]
        assert all(c.status_code == 200 for c in callbacks)
        m, events = _message(committed, message_id)
        assert m.status is S.DELIVERED
        assert [e[:2] for e in events if e[1] == "callback"] == [
            ("sent", "callback"),
            ("delivered", "callback"),
        ]
        replay = callbacks[-1]
        async with httpx.AsyncClient() as http:
            again = await http.post(
                replay.url, data=replay.params, headers={"X-Twilio-Signature": replay.signature}
            )
            forged = await http.post(
                replay.url,
                data=replay.params | {"ErrorCode": "30003"},
                headers={"X-Twilio-Signature": replay.signature},
            )
        assert (again.status_code, forged.status_code) == (200, 403)
        after, more = _message(committed, message_id)
        assert after.delivered_at == m.delivered_at and after.error_code is None
        assert len(more) == len(events) + 1
        # A message this app never recorded: answered 200, nothing written.
        await live.send(None, _phone())
        live.sandbox.flush_callbacks()
        live.sandbox.wait_callbacks()
        stray = live.sandbox.callbacks[len(callbacks) :]
        assert len(stray) == 2 and all(c.status_code == 200 for c in stray)
        stray_sid = stray[0].params["MessageSid"]
        assert (
            _scalar(
                committed,
                select(func.count()).select_from(Message).where(Message.provider_sid == stray_sid),
            )
            == 0
        )


@pytest.mark.e2e
async def test_e2e_out_of_order_and_undelivered(settings, committed) -> None:
    timing = CallbackTiming(hold=True, out_of_order_rate=1.0)
    with _live(settings, committed, timing) as live:
        ok, bad = _phone(), _phone()
        live.sandbox.set_delivery(bad, "undelivered", 30006)
        ids = {phone: _queued(committed, phone) for phone in (ok, bad)}
        for phone, message_id in ids.items():
            await live.send(message_id, phone)
        live.sandbox.flush_callbacks()
        live.sandbox.wait_callbacks()
        order = [c.params["MessageStatus"] for c in live.sandbox.callbacks if c.params["To"] == ok]
        assert order == ["delivered", "sent"]
        assert _message(committed, ids[ok])[0].status is S.DELIVERED
        m, _ = _message(committed, ids[bad])
        assert (m.status, m.error_code) == (S.UNDELIVERED, "30006")
        with committed() as s:
            assert s.get(Suppression, bad).error_code == "30006"


@pytest.mark.e2e
def test_e2e_inbound_keywords_and_relay(settings, committed) -> None:
    with committed.begin() as s:
        agent = make_staff(s)
        borrower = make_borrower(s, phone=_phone(), name="Ravi Kumar")
        loan = make_loan(s, agent=agent, borrower=borrower, loan_number=f"E2E-{_sid()[2:10]}")
        phone, number, agent_id = borrower.phone, loan.loan_number, agent.id
    opted_out = select(Borrower.opted_out_at).where(Borrower.phone == phone)
    with _live(settings, committed, CallbackTiming()) as live:
        sb = live.sandbox
        bal = sb.send_inbound(phone, "BAL")
        assert (bal.status_code, bal.body) == (200, web.EMPTY_TWIML)
        assert bal.content_type.startswith("text/xml")
        reply = _scalar(
            committed,
            select(Message.body).where(Message.idempotency_key == f"reply:{bal.message_sid}"),
        )
        assert reply == f"Test Agency: outstanding {number} INR 10000.00."

        sb.send_inbound(phone, "STOP")
        assert _scalar(committed, opted_out) is not None
        start = sb.send_inbound(phone, "START")
        assert _scalar(committed, opted_out) is None
        assert (
            _scalar(
                committed,
                select(Message.kind).where(Message.idempotency_key == f"reply:{start.message_sid}"),
            )
            is MessageKind.REPLY
        )

        text = sb.send_inbound(phone, "Can you come on Saturday?")
        with committed() as s:
            relay = next(r for r in pending_relays(s) if r.agent_id == agent_id)
        assert (relay.loan_number, relay.body) == (number, "Can you come on Saturday?")
        record = next(c for c in sb.callbacks if c.params["MessageSid"] == text.message_sid)
        retried = httpx.post(
            record.url, data=record.params, headers={"X-Twilio-Signature": record.signature}
        )
        assert retried.status_code == 200 and retried.text == web.EMPTY_TWIML
        assert _inbound_rows(committed, text.message_sid) == 1
