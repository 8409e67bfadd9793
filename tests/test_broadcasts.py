"""Broadcasts: audiences, preview, queueing one message per borrower, cancel, progress."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db import clock
from db.config import Settings
from db.models import (
    AuditEvent,
    BorrowerTag,
    Broadcast,
    BroadcastState,
    InterestMethod,
    LoanState,
    Message,
    MessageEvent,
    MessageKind,
    Role,
    Suppression,
)
from db.models import MessageStatus as S
from db.services.broadcasts import compose as bc
from db.services.broadcasts.compose import Audience, AudienceKind
from db.services.collection import ledger
from db.services.collection.ledger import Bucket
from db.services.errors import AccessDenied, Conflict, InvalidInput, NotFound
from db.services.sms.reminders import _amount_due, next_window_open
from tests.factories import actor, make_borrower, make_loan, make_staff

_tags = itertools.count(1)
TODAY = clock.utcnow().date()
WIDE = "00:00-23:59"


@pytest.fixture
def cfg(settings: Settings) -> Settings:
    """Settings whose allowed hours cover (almost) the whole day, agency zone UTC."""
    return settings.model_copy(update={"sms_allowed_hours": WIDE, "agency_timezone": "UTC"})


@pytest.fixture
def admin(session: Session):
    return actor(make_staff(session, role=Role.ADMIN))


@pytest.fixture
def agent(session: Session):
    return make_staff(session, role=Role.AGENT)


def _loan(session, agent, borrower=None, days_late=0, **kw):
    """A one-installment loan due days_late days ago (negative: in the future)."""
    return make_loan(
        session, agent=agent, borrower=borrower, first_due=TODAY - timedelta(days=days_late), **kw
    )


def _of(agent) -> Audience:
    return Audience(AudienceKind.AGENT, agent_id=agent.id)


def _ids(session, audience: Audience) -> set[int]:
    chunks = bc.audience_recipients(session, audience=audience, today=TODAY)
    return {r.borrower_id for chunk in chunks for r in chunk}


def _preview(session, admin, audience, template, cfg):
    return bc.preview_broadcast(
        session, actor=admin, audience=audience, template=template, today=TODAY, settings=cfg
    )


def _create(session, admin, audience, template, cfg):
    return bc.create_broadcast(
        session, actor=admin, audience=audience, template=template, today=TODAY, settings=cfg
    )


def _messages(session, broadcast_id: int) -> list[Message]:
    stmt = select(Message).where(Message.broadcast_id == broadcast_id).order_by(Message.id)
    return list(session.scalars(stmt))


def _set_status(session, ids, status, **values) -> None:
    session.execute(update(Message).where(Message.id.in_(ids)).values(status=status, **values))


def _mixed_portfolio(session, agent):
    """Three reachable borrowers (one with two loans), one opted out, one suppressed."""
    ok = [make_borrower(session) for _ in range(3)]
    for b in ok:
        _loan(session, agent, b, days_late=5)
    _loan(session, agent, ok[0], days_late=-10)
    out = make_borrower(session, opted_out_at=clock.utcnow())
    blocked = make_borrower(session)
    session.add(
        Suppression(
            phone=blocked.phone, reason="landline or unreachable carrier", error_code="30006"
        )
    )
    _loan(session, agent, out)
    _loan(session, agent, blocked)
    session.flush()
    return ok, out, blocked


# --- audience -----------------------------------------------------------------------------


def test_audience_json_round_trip_and_validation():
    audiences = (
        Audience(AudienceKind.ALL_ACTIVE),
        Audience(AudienceKind.BUCKET, bucket=Bucket.D31_60),
        Audience(AudienceKind.AGENT, agent_id=7),
        Audience(AudienceKind.TAG, tag=" Farmer "),
    )
    for aud in audiences:
        assert Audience.from_json(aud.to_json()) == aud
    assert Audience(AudienceKind.TAG, tag=" Farmer ").tag == "farmer"
    assert Audience(AudienceKind.OVERDUE, agent_id=3).to_json() == {"kind": "overdue"}
    with pytest.raises(InvalidInput):
        Audience(AudienceKind.BUCKET)
    with pytest.raises(InvalidInput):
        Audience(AudienceKind.TAG, tag="  ")
    for bad in ({"kind": "everyone"}, {"kind": "bucket", "bucket": "7-9"}, {}, {"kind": "agent"}):
        with pytest.raises(InvalidInput):
            Audience.from_json(bad)


def test_each_audience_kind_selects_its_borrowers(session, agent):
    other = make_staff(session)
    tag = f"tag-{next(_tags)}"
    current = _loan(session, agent, days_late=-10).borrower_id
    late5 = _loan(session, agent, days_late=5).borrower_id
    late45 = _loan(session, other, days_late=45).borrower_id
    late100 = _loan(session, other, days_late=100).borrower_id
    closed = _loan(session, agent, days_late=45)
    closed.state = LoanState.CLOSED
    session.add(BorrowerTag(borrower_id=late45, tag=tag))
    session.add(BorrowerTag(borrower_id=closed.borrower_id, tag=tag))
    session.flush()
    mine = {current, late5, late45, late100, closed.borrower_id}

    assert _ids(session, Audience(AudienceKind.ALL_ACTIVE)) & mine == mine - {closed.borrower_id}
    assert _ids(session, Audience(AudienceKind.OVERDUE)) & mine == {late5, late45, late100}
    buckets = {b: _ids(session, Audience(AudienceKind.BUCKET, bucket=b)) & mine for b in Bucket}
    assert buckets == {
        Bucket.D1_30: {late5},
        Bucket.D31_60: {late45},
        Bucket.D61_90: set(),
        Bucket.D90_PLUS: {late100},
    }
    assert _ids(session, _of(agent)) == {current, late5}
    assert _ids(session, Audience(AudienceKind.TAG, tag=tag)) == {late45}


def test_one_recipient_per_borrower_from_the_most_overdue_loan(session, agent):
    b = make_borrower(session)
    _loan(session, agent, b, days_late=-10)
    worst = _loan(session, agent, b, days_late=40, principal=Decimal("700.00"))
    _loan(session, agent, b, days_late=3)
    [[r]] = list(bc.audience_recipients(session, audience=_of(agent), today=TODAY))
    assert (r.loan_id, r.loan_number, r.amount_due) == (worst.id, worst.loan_number, Decimal("700"))
    assert r.next_due == TODAY - timedelta(days=40)


def test_many_borrowers_come_in_chunks(session, agent, monkeypatch):
    monkeypatch.setattr(bc, "CHUNK", 3)
    borrowers = [make_borrower(session) for _ in range(8)]
    overdue = [_loan(session, agent, b, days_late=2).id for b in borrowers]
    for b in borrowers:
        _loan(session, agent, b, days_late=-5)
    chunks = list(bc.audience_recipients(session, audience=_of(agent), today=TODAY))
    assert len(chunks) > 1  # 16 loan rows read 3 at a time; a borrower may straddle two
    assert [(r.borrower_id, r.loan_id) for c in chunks for r in c] == [
        (b.id, loan_id) for b, loan_id in zip(borrowers, overdue, strict=True)
    ]


@hyp_settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    paid=st.lists(st.integers(0, 40000), min_size=4, max_size=4), first_late=st.integers(-40, 120)
)
def test_amount_due_in_sql_equals_the_ledger(session, agent, paid, first_late):
    """The broadcast's {amount_due} (summed in SQL) equals the manual reminder's (Python)."""
    with session.begin_nested() as nested:
        loan = _loan(
            session,
            agent,
            days_late=first_late,
            count=4,
            principal=Decimal("1000.01"),
            method=InterestMethod.FLAT,
            rate=Decimal("18"),
        )
        for inst, cents in zip(loan.installments, paid, strict=True):
            inst.amount_paid = min(Decimal(cents).scaleb(-2), inst.amount_due)
        ledger.refresh(loan)
        session.flush()
        chunks = bc.audience_recipients(session, audience=_of(agent), today=TODAY)
        [r] = [r for c in chunks for r in c]
        assert r.amount_due == _amount_due(loan, TODAY)
        assert r.outstanding == loan.outstanding
        nested.rollback()


# --- preview ------------------------------------------------------------------------------


def test_preview_counts_reasons_and_segments(session, admin, agent, cfg):
    ok, _, _ = _mixed_portfolio(session, agent)
    p = _preview(
        session,
        admin,
        _of(agent),
        "Dear {name}, loan {loan_number}: {amount_due} due. {opt_out}",
        cfg,
    )
    assert (p.recipients, p.suppressed, p.sendable) == (5, 2, 3)
    assert p.suppressed_by_reason == {"opted out": 1, "suppressed number (carrier 30006)": 1}
    assert p.sample.startswith(f"Dear {ok[0].name}, loan ")
    assert p.sample.endswith("INR 10000.00 due. Reply STOP to opt out.")
    assert (p.encoding, p.segments_per_message, p.total_segments) == ("GSM-7", 1, 3)


@pytest.mark.parametrize(
    ("template", "encoding", "parts"),
    [
        ("A" * 160, "GSM-7", 1),
        ("A" * 161, "GSM-7", 2),
        ("नमस्ते " * 10, "UCS-2", 1),
        ("नमस्ते " * 12, "UCS-2", 2),
        ("Pay {amount_due} ₹", "UCS-2", 1),
    ],
)
def test_preview_gsm7_and_hindi_segments(session, admin, agent, cfg, template, encoding, parts):
    for _ in range(2):
        _loan(session, agent, days_late=1)
    p = _preview(session, admin, _of(agent), template, cfg)
    assert (p.encoding, p.segments_per_message, p.total_segments) == (encoding, parts, 2 * parts)


def test_preview_refuses_bad_templates(session, admin, agent, cfg):
    _loan(session, agent)
    aud = _of(agent)
    with pytest.raises(InvalidInput) as err:
        _preview(session, admin, aud, "Hi {name}, pay {balance}", cfg)
    assert err.value.params["placeholder"] == "balance"
    for bad in ("", "   \n", "x" * 2048):
        with pytest.raises(InvalidInput) as err:
            _preview(session, admin, aud, bad, cfg)
        assert err.value.code in ("broadcast_length", "template_empty")
    long_name = make_borrower(session, name="N" * 120)
    _loan(session, agent, long_name)
    with pytest.raises(InvalidInput, match="the limit is 1600"):
        _preview(session, admin, aud, "{name} " + "x" * 1500, cfg)


def test_empty_audience_is_refused(session, admin, cfg):
    nobody = Audience(AudienceKind.TAG, tag=f"nobody-{next(_tags)}")
    for call in (_preview, _create):
        with pytest.raises(InvalidInput, match=r"Nobody matches that audience\."):
            call(session, admin, nobody, "Hello", cfg)
    with pytest.raises(NotFound):
        _preview(session, admin, Audience(AudienceKind.AGENT, agent_id=10**9), "Hello", cfg)


def test_only_admins_broadcast(session, agent, cfg):
    _loan(session, agent)
    aud = _of(agent)
    for role in (Role.AGENT, Role.MANAGER):
        who = actor(make_staff(session, role=role))
        with pytest.raises(AccessDenied):
            _preview(session, who, aud, "Hello", cfg)
        with pytest.raises(AccessDenied):
            _create(session, who, aud, "Hello", cfg)
        with pytest.raises(AccessDenied):
            bc.list_broadcasts(session, actor=who)
        with pytest.raises(AccessDenied):
            bc.cancel_broadcast(session, actor=who, broadcast_id=1)
    assert (
        session.scalar(
            select(func.count()).select_from(Broadcast).where(Broadcast.created_by_id == agent.id)
        )
        == 0
    )


# --- create -------------------------------------------------------------------------------


def test_create_queues_one_message_per_borrower(session, admin, agent, cfg):
    ok, out, blocked = _mixed_portfolio(session, agent)
    aud = _of(agent)
    template = "Dear {name}, {amount_due} due {due_date} on {loan_number}. {agency} {opt_out}"
    preview = _preview(session, admin, aud, template, cfg)
    info = _create(session, admin, aud, template, cfg)
    assert (info.state, info.recipients, info.suppressed, info.audience) == (
        BroadcastState.QUEUED,
        5,
        2,
        aud,
    )
    msgs = _messages(session, info.id)
    assert sorted(m.borrower_id for m in msgs) == sorted(b.id for b in [*ok, out, blocked])
    assert {m.idempotency_key for m in msgs} == {f"bc:{info.id}:{m.borrower_id}" for m in msgs}
    assert all(
        m.kind is MessageKind.BROADCAST and m.requested_by_id == admin.staff_id for m in msgs
    )
    first = min(msgs, key=lambda m: m.borrower_id)
    assert first.body == preview.sample
    by_borrower = {m.borrower_id: m for m in msgs}
    assert by_borrower[out.id].status is S.SUPPRESSED
    assert by_borrower[out.id].error_message == "opted out"
    assert (by_borrower[blocked.id].status, by_borrower[blocked.id].error_code) == (
        S.SUPPRESSED,
        "30006",
    )
    assert [by_borrower[b.id].status for b in ok] == [S.QUEUED] * 3
    events = session.execute(
        select(MessageEvent.message_id, MessageEvent.status, MessageEvent.detail).where(
            MessageEvent.message_id.in_([m.id for m in msgs])
        )
    ).all()
    assert sorted((e.message_id, e.status) for e in events) == sorted(
        (m.id, m.status.value) for m in msgs
    )
    details = {e.message_id: e.detail for e in events}
    assert details[by_borrower[out.id].id] == "opted out"
    assert details[by_borrower[blocked.id].id] == "suppressed number (carrier 30006)"
    assert details[by_borrower[ok[0].id].id] == "broadcast"
    row = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "broadcast_created", AuditEvent.target_id == str(info.id)
        )
    ).one()
    assert row.staff_id == admin.staff_id and row.details["recipients"] == 5


def test_create_is_idempotent_per_key_and_refuses_a_double_tap(session, admin, agent, cfg):
    for _ in range(3):
        _loan(session, agent, days_late=1)
    aud = _of(agent)
    info = _create(session, admin, aud, "Hello {name}", cfg)
    again = bc.fill_broadcast(
        session, broadcast=session.get(Broadcast, info.id), today=TODAY, settings=cfg
    )
    assert again.total() == 0 and len(_messages(session, info.id)) == 3
    with pytest.raises(Conflict):
        _create(session, admin, aud, "Hello {name}", cfg)
    assert _create(session, admin, aud, "Hello again {name}", cfg).recipients == 3


def test_create_refuses_when_nobody_can_be_texted(session, admin, agent, cfg):
    _loan(session, agent, make_borrower(session, opted_out_at=clock.utcnow(), name="Ravi"))
    blocked = make_borrower(session)
    session.add(Suppression(phone=blocked.phone, reason="blocked by hand"))
    _loan(session, agent, blocked)
    p = _preview(session, admin, _of(agent), "Hi {name}", cfg)
    assert (p.recipients, p.sendable, p.total_segments, p.sample) == (2, 0, 0, "Hi Ravi")
    assert p.suppressed_by_reason == {"opted out": 1, "suppressed number (blocked by hand)": 1}
    with pytest.raises(InvalidInput, match="opted out or cannot take SMS"):
        _create(session, admin, _of(agent), "Hi", cfg)


def test_messages_wait_for_the_allowed_hours_in_the_borrowers_zone(session, admin, agent, cfg):
    now = clock.utcnow()
    window = "13:00-14:00" if now.hour < 12 else "01:00-02:00"
    late = cfg.model_copy(update={"sms_allowed_hours": window})
    _loan(session, agent, make_borrower(session, timezone="UTC"))
    info = _create(session, admin, _of(agent), "Hi", late)
    [m] = _messages(session, info.id)
    start = time(13) if now.hour < 12 else time(1)
    day = now.date() if now.hour < 12 else now.date() + timedelta(days=1)
    assert m.send_after == datetime.combine(day, start, tzinfo=UTC)
    assert m.expires_at == m.send_after + timedelta(hours=late.sms_expiry_hours)


def test_next_window_open():
    window = (time(8), time(19))
    kolkata = bc.zone("Asia/Kolkata", "UTC")
    inside = datetime(2025, 3, 5, 6, 0, tzinfo=UTC)  # 11:30 in Kolkata
    assert next_window_open(inside, kolkata, window) is None
    night = datetime(2025, 3, 5, 15, 0, tzinfo=UTC)  # 20:30 in Kolkata
    assert next_window_open(night, kolkata, window) == datetime(2025, 3, 6, 2, 30, tzinfo=UTC)
    early = datetime(2025, 3, 5, 1, 0, tzinfo=UTC)  # 06:30 in Kolkata
    assert next_window_open(early, kolkata, window) == datetime(2025, 3, 5, 2, 30, tzinfo=UTC)
    assert bc.zone("Mars/Olympus", "UTC") == bc.zone(None, "UTC")


# --- after: cancel, progress, failures, list, finish ---------------------------------------


def _broadcast(session, admin, agent, cfg, n=4):
    for _ in range(n):
        _loan(session, agent, days_late=1)
    info = _create(session, admin, _of(agent), "Hi", cfg)
    return info, [m.id for m in _messages(session, info.id)]


def test_cancel_stops_queued_and_leaves_sent(session, admin, agent, cfg):
    info, ids = _broadcast(session, admin, agent, cfg)
    _set_status(session, ids[:1], S.SENT, sent_at=clock.utcnow())
    _set_status(session, ids[1:2], S.SENDING)
    done = bc.cancel_broadcast(session, actor=admin, broadcast_id=info.id)
    assert done.state is BroadcastState.CANCELED and done.canceled_at is not None
    session.expire_all()
    assert [m.status for m in _messages(session, info.id)] == [
        S.SENT,
        S.SENDING,
        S.CANCELED,
        S.CANCELED,
    ]
    assert (
        session.scalar(
            select(func.count())
            .select_from(MessageEvent)
            .where(MessageEvent.message_id.in_(ids), MessageEvent.status == "canceled")
        )
        == 2
    )
    assert session.scalar(
        select(AuditEvent.details).where(
            AuditEvent.action == "broadcast_canceled", AuditEvent.target_id == str(info.id)
        )
    ) == {"canceled": 2}
    with pytest.raises(Conflict, match="already canceled"):
        bc.cancel_broadcast(session, actor=admin, broadcast_id=info.id)


def test_cancel_refuses_a_finished_broadcast(session, admin, agent, cfg):
    info, ids = _broadcast(session, admin, agent, cfg, n=2)
    _set_status(session, ids, S.DELIVERED)
    with pytest.raises(Conflict, match="nothing left to cancel"):
        bc.cancel_broadcast(session, actor=admin, broadcast_id=info.id)
    bc.finish_done_broadcasts(session)
    with pytest.raises(Conflict, match="already done"):
        bc.cancel_broadcast(session, actor=admin, broadcast_id=info.id)
    with pytest.raises(NotFound):
        bc.cancel_broadcast(session, actor=admin, broadcast_id=10**9)


def test_progress_counts_and_done(session, admin, agent, cfg):
    info, ids = _broadcast(session, admin, agent, cfg, n=6)
    now = clock.utcnow()
    _set_status(session, ids[:2], S.DELIVERED)
    _set_status(session, ids[2:3], S.FAILED, error_code="21211")
    _set_status(session, ids[3:4], S.SENT, sent_at=now - timedelta(hours=1))
    p = bc.broadcast_progress(session, broadcast_id=info.id, now=now)
    assert p.counts == {
        "queued": 2,
        "sending": 0,
        "sent": 1,
        "delivered": 2,
        "undelivered": 0,
        "failed": 1,
        "canceled": 0,
        "suppressed": 0,
    }
    assert (p.total, p.done) == (6, False)
    _set_status(session, ids[4:], S.UNDELIVERED, error_code="30003")
    assert not bc.broadcast_progress(session, broadcast_id=info.id, now=now).done
    later = now + bc.SENT_SETTLES + timedelta(hours=1)
    assert bc.broadcast_progress(session, broadcast_id=info.id, now=later).done


def test_failures_grouped_by_reason_with_the_providers_code(session, admin, agent, cfg):
    info, ids = _broadcast(session, admin, agent, cfg, n=6)
    # As the worker leaves them: its words in failure_reason, the provider's code as it came.
    _set_status(
        session, ids[:2], S.FAILED, error_code="21211", failure_reason="invalid phone number"
    )
    landline = "landline or unreachable carrier"
    _set_status(session, ids[2:3], S.UNDELIVERED, error_code="30006", failure_reason=landline)
    late = "Twilio did not answer in time (retried, then gave up)"
    _set_status(session, ids[3:4], S.FAILED, error_message="timeout error: x", failure_reason=late)
    _set_status(session, ids[4:5], S.FAILED, error_code="39999")  # no words recorded
    got = bc.failures_by_code(session, broadcast_id=info.id)
    assert got[0] == ("21211", 2, "invalid phone number")
    assert set(got[1:]) == {
        ("30006", 1, landline),
        (None, 1, late),
        ("39999", 1, "no reason recorded"),
    }


def test_finish_done_broadcasts_and_list(session, admin, agent, cfg):
    first, ids = _broadcast(session, admin, agent, cfg, n=2)
    second = _create(session, admin, _of(agent), "Bye", cfg)
    _set_status(session, ids[:1], S.DELIVERED)
    _set_status(session, ids[1:], S.SENDING)
    bc.finish_done_broadcasts(session)
    assert session.get(Broadcast, first.id).state is BroadcastState.QUEUED
    _set_status(session, ids[1:], S.SENT)
    assert bc.finish_done_broadcasts(session) >= 1
    session.expire_all()
    assert session.get(Broadcast, first.id).state is BroadcastState.DONE
    assert session.get(Broadcast, first.id).finished_at is not None
    assert session.get(Broadcast, second.id).state is BroadcastState.QUEUED
    listed = [b.id for b in bc.list_broadcasts(session, actor=admin, limit=50)]
    assert listed.index(second.id) < listed.index(first.id)
    assert len(bc.list_broadcasts(session, actor=admin, limit=1)) == 1
