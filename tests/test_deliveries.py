"""Delivery reports, failures by the worker's reasons, and one reminder now."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db import clock
from db.config import Settings
from db.models import (
    AuditEvent,
    LoanEvent,
    LoanEventKind,
    LoanState,
    Message,
    MessageKind,
    Role,
    Suppression,
    SuppressionKind,
)
from db.models import MessageStatus as S
from db.services.errors import AccessDenied, Conflict, NotFound
from db.services.sms import deliveries, reminders, suppressions
from scheduler.twilio_words import words
from tests.factories import actor, make_borrower, make_loan, make_staff

_keys = itertools.count(1)
# Far from today, so rows other test runs commit meanwhile never fall in the window.
NOW = datetime(2001, 6, 1, 12, 0, tzinfo=UTC)
TODAY = clock.utcnow().date()


@pytest.fixture
def cfg(settings: Settings) -> Settings:
    wide = {"sms_allowed_hours": "00:00-23:59", "agency_timezone": "UTC"}
    return settings.model_copy(update=wide)


def _msg(session: Session, kind: MessageKind, status: S, age: timedelta, code=None, text=None):
    """A message row as the worker would have left it (test setup, not a service)."""
    session.add(
        Message(
            to_phone="+919800000000",
            body="x",
            kind=kind,
            status=status,
            attempts=1,
            idempotency_key=f"tdel:{next(_keys)}",
            created_at=NOW - age,
            send_after=NOW - age,
            error_code=code,
            error_message=text,
            failure_reason=words(code, text) if status in (S.FAILED, S.UNDELIVERED) else None,
        )
    )


def test_delivery_report_matches_a_hand_count(session):
    hour, days3, days10 = timedelta(hours=2), timedelta(days=3), timedelta(days=10)
    R, B, N, P = MessageKind.REMINDER, MessageKind.BROADCAST, MessageKind.NOTICE, MessageKind.REPLY
    rows = [
        (R, S.DELIVERED, hour, None, None),
        (R, S.DELIVERED, hour, None, None),
        (R, S.UNDELIVERED, hour, "30003", None),
        (R, S.QUEUED, hour, None, None),
        (B, S.DELIVERED, days3, None, None),
        (B, S.FAILED, days3, "21211", None),
        (B, S.FAILED, days3, "21211", None),
        (B, S.SUPPRESSED, hour, None, None),
        (B, S.SENT, hour, None, None),
        (N, S.FAILED, hour, None, "timeout error: x"),
        (P, S.DELIVERED, days3, None, None),
        (R, S.FAILED, days3, "30007", None),
        (R, S.FAILED, days3, "30005", None),
        (R, S.FAILED, days3, "30004", None),
        (R, S.FAILED, days10, "21610", None),
        (R, S.DELIVERED, days10, None, None),
    ]
    for row in rows:
        _msg(session, *row)
    session.flush()
    admin = actor(make_staff(session, role=Role.ADMIN))
    report = deliveries.delivery_report(session, actor=admin, now=NOW)

    assert report.day.totals == {
        **dict.fromkeys([s.value for s in S], 0),
        "delivered": 2,
        "undelivered": 1,
        "queued": 1,
        "suppressed": 1,
        "sent": 1,
        "failed": 1,
    }
    assert (report.day.finished, report.day.pending, report.day.delivery_rate) == (
        4,
        2,
        Decimal("50.0"),
    )
    week = Counter()
    for kind, status, age, _, _ in rows:
        if age <= timedelta(days=7):
            week[(kind.value, status.value)] += 1
    by_kind = report.week.by_kind
    assert {(k, s): n for k, per in by_kind.items() for s, n in per.items() if n} == week
    assert report.week.by_kind["reply"]["delivered"] == 1
    assert (report.week.delivered, report.week.finished) == (4, 11)
    assert report.week.delivery_rate == Decimal("36.4")
    top = [(f.code, f.count) for f in report.top_errors]
    assert top[0] == ("21211", 2) and len(top) == 5
    assert {c for c, _ in top} < {"21211", "30003", "30004", "30005", "30007", None}
    assert report.top_errors[0].words == "invalid phone number"
    late = [f for f in report.top_errors if f.code is None]
    assert all(f.words.startswith("Twilio did not answer in time") for f in late)


def test_failures_without_a_reason_are_said_so(session):
    """A failure the worker gave no words for is counted, in our words, never dropped."""
    age = timedelta(days=300)  # a window of its own
    _msg(session, MessageKind.NOTICE, S.FAILED, age, "30003")
    _msg(session, MessageKind.NOTICE, S.FAILED, age, "30003")
    session.flush()
    session.execute(
        update(Message).where(Message.created_at == NOW - age).values(failure_reason=None)
    )
    _msg(session, MessageKind.NOTICE, S.UNDELIVERED, age, "30003")
    session.flush()
    lines = deliveries.failure_counts(session, Message.created_at == NOW - age)
    assert [(f.code, f.count, f.words) for f in lines] == [
        ("30003", 2, "no reason recorded"),
        ("30003", 1, "unreachable handset (switched off or out of coverage)"),
    ]


def test_delivery_report_of_an_empty_period_and_for_admins_only(session):
    admin = actor(make_staff(session, role=Role.ADMIN))
    empty = deliveries.delivery_report(session, actor=admin, now=datetime(1999, 1, 1, tzinfo=UTC))
    assert empty.week.delivery_rate is None and empty.top_errors == ()
    assert sum(empty.week.totals.values()) == 0
    for role in (Role.AGENT, Role.MANAGER):
        with pytest.raises(AccessDenied):
            who = actor(make_staff(session, role=role))
            deliveries.delivery_report(session, actor=who, now=NOW)


# --- one reminder now ---------------------------------------------------------------------


def _remind(session, who, loan, cfg, today: date = TODAY):
    return reminders.queue_reminder_now(
        session, actor=who, loan_number=loan.loan_number, today=today, settings=cfg
    )


def _count(session, loan) -> int:
    stmt = select(func.count()).select_from(Message).where(Message.loan_id == loan.id)
    return session.scalar(stmt)


def test_agent_reminds_own_overdue_loan(session, cfg):
    agent = make_staff(session)
    loan = make_loan(
        session,
        agent=agent,
        count=3,
        principal=Decimal("3000.00"),
        first_due=TODAY - timedelta(days=40),
    )
    info = _remind(session, actor(agent), loan, cfg)
    assert (info.kind, info.status, info.rule) == (MessageKind.REMINDER, S.QUEUED, "manual")
    assert info.idempotency_key == f"manual:{loan.id}:{TODAY.isoformat()}"
    assert info.to == loan.borrower.phone and info.waits_until is None
    second_due = loan.installments[1].due_date
    owed = "INR 2000.00" if second_due < TODAY else "INR 1000.00"
    assert f"{owed} for loan {loan.loan_number}" in info.body and "overdue" in info.body
    assert "Total outstanding INR 3000.00" in info.body
    msg = session.get(Message, info.id)
    assert msg.requested_by_id == agent.id and msg.expires_at is not None
    assert session.scalar(select(LoanEvent.kind).where(LoanEvent.loan_id == loan.id)) is (
        LoanEventKind.REMINDER
    )
    assert session.scalar(
        select(AuditEvent.action).where(
            AuditEvent.target_id == str(loan.id), AuditEvent.action == "reminder_requested"
        )
    )


def test_reminder_before_the_due_date_uses_the_next_installment(session, cfg):
    agent = make_staff(session)
    loan = make_loan(
        session,
        agent=agent,
        count=2,
        principal=Decimal("500.00"),
        first_due=TODAY + timedelta(days=3),
    )
    body = _remind(session, actor(agent), loan, cfg).body
    assert f"INR 250.00 for loan {loan.loan_number} is due on" in body


def test_reminder_only_for_own_loans(session, cfg):
    owner, other = make_staff(session), make_staff(session)
    loan = make_loan(session, agent=owner)
    with pytest.raises(NotFound):
        _remind(session, actor(other), loan, cfg)
    assert _count(session, loan) == 0
    manager = actor(make_staff(session, role=Role.MANAGER))
    assert _remind(session, manager, loan, cfg).loan_id == loan.id


def test_reminder_once_a_day(session, cfg):
    agent = make_staff(session)
    loan = make_loan(session, agent=agent)
    _remind(session, actor(agent), loan, cfg)
    with pytest.raises(Conflict, match="already reminded today") as err:
        _remind(session, actor(agent), loan, cfg)
    assert err.value.code == "already_reminded"
    _remind(session, actor(agent), loan, cfg, today=TODAY + timedelta(days=1))
    assert _count(session, loan) == 2


def test_reminder_refused_when_opted_out_suppressed_or_closed(session, cfg):
    agent = make_staff(session)
    out = make_loan(
        session, agent=agent, borrower=make_borrower(session, opted_out_at=clock.utcnow())
    )
    with pytest.raises(Conflict, match="opted out") as err:
        _remind(session, actor(agent), out, cfg)
    assert err.value.code == "opted_out"
    blocked = make_loan(session, agent=agent)
    session.add(
        Suppression(
            phone=blocked.borrower.phone,
            reason="landline or unreachable carrier",
            error_code="30006",
        )
    )
    session.flush()
    with pytest.raises(Conflict, match="landline") as err:
        _remind(session, actor(agent), blocked, cfg)
    assert err.value.code == "suppressed"
    closed = make_loan(session, agent=agent)
    closed.state = LoanState.CLOSED
    session.flush()
    with pytest.raises(Conflict, match="is closed") as err:
        _remind(session, actor(agent), closed, cfg)
    assert err.value.code == "loan_not_active"
    assert sum(_count(session, loan) for loan in (out, blocked, closed)) == 0


def test_reminder_outside_the_allowed_hours_waits(session, cfg):
    now = clock.utcnow()
    window = "13:00-14:00" if now.hour < 12 else "01:00-02:00"
    late = cfg.model_copy(update={"sms_allowed_hours": window})
    agent = make_staff(session)
    loan = make_loan(session, agent=agent, borrower=make_borrower(session, timezone="UTC"))
    info = _remind(session, actor(agent), loan, late)
    start = time(13) if now.hour < 12 else time(1)
    day = now.date() if now.hour < 12 else now.date() + timedelta(days=1)
    assert info.waits_until == datetime.combine(day, start, tzinfo=UTC) == info.send_after


def test_deliveries_overview_is_the_report_and_the_newest_suppressed(session):
    admin = actor(make_staff(session, role=Role.ADMIN))
    phones = [f"+9197{random.randrange(10**8):08d}" for _ in range(3)]
    for phone in phones:
        suppressions.suppress(
            session, phone=phone, kind=SuppressionKind.PERMANENT, reason="x", error_code=None
        )
    overview = deliveries.deliveries_overview(session, actor=admin, now=NOW, suppressed_limit=2)
    assert overview.report == deliveries.delivery_report(session, actor=admin, now=NOW)
    listed = suppressions.list_suppressed(session, actor=admin, limit=2)
    assert overview.suppressed == listed and len(listed) == 2
    with pytest.raises(AccessDenied):
        agent = actor(make_staff(session, role=Role.AGENT))
        deliveries.deliveries_overview(session, actor=agent, now=NOW, suppressed_limit=2)
