"""The outbox service: queueing, claiming, and every transition with its message_event."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import clock
from db.models import (
    Borrower,
    Broadcast,
    BroadcastState,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    Suppression,
)
from db.services.errors import InvalidInput
from db.services.sms import outbox
from db.services.sms.outbox import EventSource
from scheduler import twilio_codes
from tests.factories import make_borrower

S = MessageStatus
_keys = itertools.count(1)


def _queue(session: Session, borrower: Borrower | None = None, **kw) -> outbox.MessageInfo:
    borrower = borrower or make_borrower(session)
    kw["send_after"] = kw.get("send_after") or clock.utcnow() - timedelta(minutes=1)
    info = outbox.queue_message(
        session,
        to=borrower.phone,
        body=kw.pop("body", "Hello"),
        borrower_id=borrower.id,
        kind=kw.pop("kind", MessageKind.NOTICE),
        idempotency_key=f"t:{next(_keys)}",
        **kw,
    )
    assert info is not None
    return info


def _events(session: Session, message_id: int) -> list[tuple[str, str]]:
    rows = session.execute(
        select(MessageEvent.status, MessageEvent.source)
        .where(MessageEvent.message_id == message_id)
        .order_by(MessageEvent.id)
    )
    return [tuple(r) for r in rows]


def _claim_one(session: Session, info: outbox.MessageInfo) -> outbox.ClaimedMessage:
    claimed = outbox.claim_due(session, now=clock.utcnow(), limit=1000, worker_id="w1")
    return next(m for m in claimed if m.id == info.id)


def _sent(session: Session, sid: str = "SM1") -> outbox.MessageInfo:
    info = _queue(session)
    _claim_one(session, info)
    assert outbox.mark_sent(session, message_id=info.id, sid=sid, segments=1)
    return info


def test_queue_message_is_idempotent_and_records_an_event(session):
    borrower = make_borrower(session)
    args = dict(to=borrower.phone, body="Hi", kind=MessageKind.REPLY, idempotency_key="k:dup")
    first = outbox.queue_message(session, borrower_id=borrower.id, **args)
    again = outbox.queue_message(session, borrower_id=borrower.id, **args)
    assert first is not None and first.status is S.QUEUED and first.attempts == 0
    assert again is None
    count = session.scalar(select(func.count()).where(Message.idempotency_key == "k:dup"))
    assert count == 1
    assert _events(session, first.id) == [("queued", "outbox")]


@pytest.mark.parametrize("body", ["", "   ", "x" * 1601])
def test_queue_message_refuses_an_empty_or_huge_body(session, body):
    with pytest.raises(InvalidInput):
        outbox.queue_message(
            session, to="+919800000001", body=body, kind=MessageKind.NOTICE, idempotency_key="k:x"
        )


def test_claim_due_takes_due_messages_oldest_first_up_to_the_limit(session):
    # Far in the past, so no other test's committed row on a shared database is older.
    now = clock.utcnow() - timedelta(days=3650)
    later = _queue(session, send_after=now + timedelta(hours=1))
    newer = _queue(session, send_after=now - timedelta(minutes=1))
    older = _queue(session, send_after=now - timedelta(minutes=5))
    claimed = outbox.claim_due(session, now=now, limit=1, worker_id="host:1")
    assert [m.id for m in claimed] == [older.id]
    m = claimed[0]
    assert (m.status, m.attempts, m.sending_at) == (S.SENDING, 1, now)
    assert session.get(Message, older.id).claimed_by == "host:1"
    rest = outbox.claim_due(session, now=now, limit=10, worker_id="host:2")
    assert [m.id for m in rest if m.id in (later.id, newer.id, older.id)] == [newer.id]
    assert _events(session, older.id)[-1] == ("sending", "worker")


def test_mark_sent_records_the_sid_once(session):
    info = _sent(session, sid="SMabc")
    row = session.get(Message, info.id)
    assert (row.status, row.provider_sid, row.segments) == (S.SENT, "SMabc", 1)
    assert row.sent_at is not None
    assert not outbox.mark_sent(session, message_id=info.id, sid="SMother", segments=1)
    assert session.get(Message, info.id).provider_sid == "SMabc"
    assert [s for s, _ in _events(session, info.id)] == ["queued", "sending", "sent", "sent"]


def test_mark_retry_requeues_with_back_off_then_fails_at_max_attempts(session):
    info = _queue(session)
    _claim_one(session, info)
    retry_at = clock.utcnow() + timedelta(seconds=30)
    status = outbox.mark_retry(
        session,
        message_id=info.id,
        error="HTTP 429",
        error_code="20429",
        retry_at=retry_at,
        max_attempts=2,
    )
    row = session.get(Message, info.id)
    assert status is S.QUEUED
    assert (row.status, row.send_after, row.error_code, row.claimed_by) == (
        S.QUEUED,
        retry_at,
        "20429",
        None,
    )
    row.send_after = clock.utcnow() - timedelta(seconds=1)
    _claim_one(session, info)
    status = outbox.mark_retry(
        session, message_id=info.id, error="HTTP 500", retry_at=retry_at, max_attempts=2
    )
    row = session.get(Message, info.id)
    assert status is S.FAILED and row.status is S.FAILED and row.attempts == 2
    assert row.failed_at is not None


def test_defer_gives_the_attempt_back(session):
    info = _queue(session)
    _claim_one(session, info)
    until = clock.utcnow() + timedelta(hours=3)
    assert outbox.defer(session, message_id=info.id, until=until, reason="quiet hours")
    row = session.get(Message, info.id)
    assert (row.status, row.attempts, row.send_after) == (S.QUEUED, 0, until)
    assert _events(session, info.id)[-1] == ("queued", "policy")


@pytest.mark.parametrize(
    ("code", "suppressed"), [("21211", True), ("21614", True), ("21408", False)]
)
def test_mark_failed_keeps_the_code_and_suppresses_dead_numbers(
    session, settings, code, suppressed
):
    info = _queue(session)
    _claim_one(session, info)
    assert twilio_codes.mark_failed(
        session, message_id=info.id, code=code, text="refused", settings=settings
    )
    row = session.get(Message, info.id)
    assert (row.status, row.error_code, row.error_message) == (S.FAILED, code, "refused")
    assert (session.get(Suppression, info.to) is not None) is suppressed
    assert session.get(Borrower, info.borrower_id).opted_out_at is None


def test_mark_failed_21610_opts_the_borrower_out(session, settings):
    info = _queue(session)
    _claim_one(session, info)
    twilio_codes.mark_failed(
        session, message_id=info.id, code="21610", text="unsubscribed", settings=settings
    )
    session.expire_all()
    assert session.get(Borrower, info.borrower_id).opted_out_at is not None


def test_mark_suppressed(session):
    info = _queue(session)
    _claim_one(session, info)
    assert outbox.mark_suppressed(session, message_id=info.id, reason="opted out")
    row = session.get(Message, info.id)
    assert (row.status, row.error_message) == (S.SUPPRESSED, "opted out")
    assert not outbox.mark_sent(session, message_id=info.id, sid="SMlate", segments=1)


def test_callbacks_out_of_order_end_delivered_and_every_one_is_recorded(session):
    info = _sent(session, sid="SMooo")
    cb = EventSource.CALLBACK
    assert outbox.apply_status(session, sid="SMooo", status=S.DELIVERED, error_code=None, source=cb)
    assert not outbox.apply_status(session, sid="SMooo", status=S.SENT, error_code=None, source=cb)
    assert not outbox.apply_status(
        session, sid="SMooo", status=S.DELIVERED, error_code=None, source=cb
    )
    row = session.get(Message, info.id)
    assert row.status is S.DELIVERED and row.delivered_at is not None
    tail = _events(session, info.id)[-3:]
    assert tail == [("delivered", "callback"), ("sent", "callback"), ("delivered", "callback")]


@pytest.mark.parametrize(
    ("word", "ours"),
    [
        ("accepted", S.SENT),
        ("queued", S.SENT),
        ("sending", S.SENT),
        ("sent", S.SENT),
        ("delivered", S.DELIVERED),
        ("READ", S.DELIVERED),
        ("undelivered", S.UNDELIVERED),
        ("failed", S.FAILED),
        ("canceled", S.FAILED),
        ("receiving", None),
        (None, None),
    ],
)
def test_twilio_statuses_are_translated_at_the_worker(word, ours):
    assert twilio_codes.status_of(word) is ours


def test_a_twilio_word_we_do_not_know_is_recorded_and_ignored(session):
    info = _sent(session, sid="SModd")
    assert not twilio_codes.apply_status(
        session, sid="SModd", status="receiving", error_code=None, source="callback"
    )
    assert session.get(Message, info.id).status is S.SENT
    assert _events(session, info.id)[-1] == ("receiving", "callback")
    # A Twilio word that means "handed over" is kept as Twilio said it in the event.
    assert not twilio_codes.apply_status(
        session, sid="SModd", status="queued", error_code=None, source="callback"
    )
    assert _events(session, info.id)[-1] == ("queued", "callback")


def test_unknown_sid_changes_nothing(session):
    assert not outbox.apply_status(
        session, sid="SMnope", status=S.DELIVERED, error_code=None, source="callback"
    )


@pytest.mark.parametrize("code", ["30004", "30005", "30006"])
def test_undelivered_carrier_codes_suppress_the_number(session, settings, code):
    info = _sent(session, sid=f"SMu{code}")
    assert twilio_codes.apply_status(
        session,
        sid=f"SMu{code}",
        status="undelivered",
        error_code=code,
        source="callback",
        settings=settings,
    )
    row = session.get(Message, info.id)
    assert (row.status, row.error_code) == (S.UNDELIVERED, code)
    assert session.get(Suppression, info.to).error_code == code


def test_a_failed_callback_with_21610_opts_out(session, settings):
    info = _sent(session, sid="SMstop")
    twilio_codes.apply_status(
        session, sid="SMstop", status="failed", error_code="21610", source="cb", settings=settings
    )
    session.expire_all()
    assert session.get(Borrower, info.borrower_id).opted_out_at is not None


def test_cancel_broadcast_cancels_only_queued_messages(session):
    bc = Broadcast(audience={"all": True}, template="Hi", state=BroadcastState.QUEUED)
    session.add(bc)
    session.flush()
    soon = clock.utcnow() + timedelta(hours=1)
    queued = [
        _queue(session, kind=MessageKind.BROADCAST, broadcast_id=bc.id, send_after=at)
        for at in (None, soon, soon)
    ]
    claimed = _claim_one(session, queued[0])
    assert outbox.cancel_broadcast_messages(session, broadcast_id=bc.id) == 2
    session.expire_all()
    statuses = {m.id: session.get(Message, m.id).status for m in queued}
    assert statuses == {claimed.id: S.SENDING, queued[1].id: S.CANCELED, queued[2].id: S.CANCELED}
    assert _events(session, queued[1].id)[-1] == ("canceled", "outbox")


def test_stuck_sending_and_sent_without_final(session):
    stuck = _queue(session)
    _claim_one(session, stuck)
    quiet = _sent(session, sid="SMquiet")
    later = clock.utcnow() + timedelta(hours=3)
    assert stuck.id in {m.id for m in outbox.stuck_sending(session, older_than=later)}
    assert stuck.id not in {
        m.id for m in outbox.stuck_sending(session, older_than=clock.utcnow() - timedelta(hours=1))
    }
    assert quiet.id in {m.id for m in outbox.sent_without_final(session, older_than=later)}
    outbox.apply_status(session, sid="SMquiet", status=S.DELIVERED, error_code=None, source="cb")
    assert quiet.id not in {m.id for m in outbox.sent_without_final(session, older_than=later)}


def test_requeue_stuck_only_touches_old_sending_rows(session):
    info = _queue(session)
    _claim_one(session, info)
    recent = clock.utcnow() - timedelta(minutes=5)
    assert (
        outbox.requeue_stuck(session, message_id=info.id, older_than=recent, max_attempts=5) is None
    )
    future = clock.utcnow() + timedelta(minutes=1)
    status = outbox.requeue_stuck(session, message_id=info.id, older_than=future, max_attempts=5)
    assert status is S.QUEUED
    assert _events(session, info.id)[-1] == ("queued", "reconcile")
