"""The planner (reminders queued once per loan, rule and due date) and the daily job."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.config import LateFeeKind
from db.models import (
    Frequency,
    Installment,
    LoanState,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    Promise,
    PromiseState,
    Suppression,
)
from scheduler import jobs
from tests.factories import make_borrower, make_loan

TODAY = date(2030, 1, 15)


def _reminders(session: Session, loan_ids: list[int] | None = None) -> list[Message]:
    stmt = select(Message).where(Message.kind == MessageKind.REMINDER).order_by(Message.id)
    if loan_ids is not None:
        stmt = stmt.where(Message.loan_id.in_(loan_ids))
    return list(session.scalars(stmt))


def _loan_due(session: Session, days_from_today: int, **kw):
    return make_loan(session, agent=None, first_due=TODAY + timedelta(days=days_from_today), **kw)


def test_each_rule_picks_the_installments_due_its_number_of_days_away(session, settings):
    loans = {d: _loan_due(session, d) for d in (3, 0, -1, -7, -14, -30, -2, 5)}
    queued = jobs.plan_reminders(session, today=TODAY, settings=settings)
    got = {m.loan_id: m.rule for m in _reminders(session, [ln.id for ln in loans.values()])}
    expected = {3: "due-3", 0: "due+0", -1: "due+1", -7: "due+7", -14: "due+14", -30: "due+30"}
    assert got == {loans[d].id: rule for d, rule in expected.items()}
    assert queued >= len(expected)


def test_the_message_is_rendered_keyed_and_timed(session, settings):
    borrower = make_borrower(session, name="Asha Rao", timezone="America/New_York")
    loan = _loan_due(session, -1, borrower=borrower, principal=Decimal("1500.00"))
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    [m] = _reminders(session, [loan.id])
    assert m.idempotency_key == f"rem:{loan.id}:due+1:2030-01-14"
    assert m.to_phone == borrower.phone and m.borrower_id == borrower.id
    assert m.body.startswith("Dear Asha Rao, INR 1500.00 for loan ")
    assert "14 Jan 2030" in m.body and m.body.endswith("Reply STOP to opt out.")
    # 08:00 in New York on the planning day, and the default 48 hours to get out.
    assert m.send_after == datetime(2030, 1, 15, 13, 0, tzinfo=UTC)
    assert m.expires_at == m.send_after + timedelta(hours=48)
    assert (m.status, m.attempts) == (MessageStatus.QUEUED, 0)
    events = session.scalars(select(MessageEvent).where(MessageEvent.message_id == m.id)).all()
    assert [(e.status, e.source, e.detail) for e in events] == [("queued", "planner", "due+1")]


def test_two_time_zones_get_their_own_morning(session, settings):
    india = _loan_due(session, 0, borrower=make_borrower(session, timezone="Asia/Kolkata"))
    usa = _loan_due(session, 0, borrower=make_borrower(session, timezone="America/New_York"))
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    by_loan = {m.loan_id: m.send_after for m in _reminders(session, [india.id, usa.id])}
    assert by_loan[india.id] == datetime(2030, 1, 15, 2, 30, tzinfo=UTC)
    assert by_loan[usa.id] == datetime(2030, 1, 15, 13, 0, tzinfo=UTC)


def test_amount_due_is_what_is_left_of_the_installment(session, settings):
    loan = _loan_due(session, 0, principal=Decimal("3000.00"), count=3)
    inst = session.scalars(select(Installment).where(Installment.loan_id == loan.id)).first()
    inst.amount_paid = Decimal("400.00")
    loan.amount_paid = Decimal("400.00")
    session.flush()
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    [m] = _reminders(session, [loan.id])
    assert "INR 600.00 for loan" in m.body


def test_closed_loans_settled_installments_and_opted_out_borrowers_get_none(session, settings):
    closed = _loan_due(session, 0)
    closed.state = LoanState.CLOSED
    settled = _loan_due(session, 0)
    for inst in settled.installments:
        inst.amount_paid = inst.principal_due + inst.interest_due
    opted = _loan_due(session, 0, borrower=make_borrower(session, opted_out_at=datetime.now(UTC)))
    dead = _loan_due(session, 0)
    session.add(Suppression(phone=dead.borrower.phone, reason="landline"))
    session.flush()
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    assert _reminders(session, [closed.id, settled.id, opted.id, dead.id]) == []


def test_an_unpaid_late_fee_keeps_the_reminders_going(session, settings):
    loan = _loan_due(session, -7)
    for inst in loan.installments:
        inst.amount_paid = inst.principal_due + inst.interest_due
        inst.fee_due = Decimal("100.00")
    session.flush()
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    [m] = _reminders(session, [loan.id])
    assert m.body.startswith("Dear ") and "INR 100.00 for loan" in m.body


def test_planning_twice_queues_nothing_new(session, settings, monkeypatch):
    monkeypatch.setattr(jobs, "PLAN_BATCH", 3)  # several batches from a few loans
    loans = [_loan_due(session, d) for d in (0, 0, 0, 0, -1, -1, -7, 3, 3, 3)]
    first = jobs.plan_reminders(session, today=TODAY, settings=settings)
    assert len(_reminders(session, [ln.id for ln in loans])) == 10
    assert first >= 10
    assert jobs.plan_reminders(session, today=TODAY, settings=settings) == 0
    assert len(_reminders(session, [ln.id for ln in loans])) == 10


def test_a_restarted_planner_queues_nothing_new(committed, settings):
    with committed.begin() as s:
        ids = [_loan_due(s, d).id for d in (0, -1, 3)]
    with committed.begin() as s:
        assert jobs.plan_reminders(s, today=TODAY, settings=settings) == 3
    with committed.begin() as s:  # a new process: nothing remembered but the database
        assert jobs.plan_reminders(s, today=TODAY, settings=settings) == 0
        assert len(_reminders(s, ids)) == 3


def test_two_planners_at_once_queue_each_reminder_once(committed, settings):
    with committed.begin() as s:
        ids = [_loan_due(s, d).id for d in [0] * 40 + [-1] * 40]
    results: list[int] = []
    barrier = threading.Barrier(2)

    def plan() -> None:
        barrier.wait()
        with committed.begin() as s:
            results.append(jobs.plan_reminders(s, today=TODAY, settings=settings))

    threads = [threading.Thread(target=plan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with committed() as s:
        mine = _reminders(s, ids)
        keys = [m.idempotency_key for m in mine]
        events = s.scalar(
            select(func.count()).where(MessageEvent.message_id.in_([m.id for m in mine]))
        )
    assert sum(results) == 80
    assert len(keys) == len(set(keys)) == 80
    assert events == 80


def test_a_new_due_date_is_a_new_reminder(session, settings):
    loan = _loan_due(session, 0, count=2, frequency=Frequency.DAILY)
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    jobs.plan_reminders(session, today=TODAY + timedelta(days=1), settings=settings)
    keys = sorted(m.idempotency_key for m in _reminders(session, [loan.id]))
    assert keys == [
        f"rem:{loan.id}:due+0:2030-01-15",
        f"rem:{loan.id}:due+0:2030-01-16",
        f"rem:{loan.id}:due+1:2030-01-15",
    ]


@pytest.fixture
def fee_settings(settings):
    return settings.model_copy(
        update={"late_fee_kind": LateFeeKind.FIXED, "late_fee_amount": Decimal("100.00")}
    )


def test_daily_charges_late_fees_and_breaks_promises(session, fee_settings):
    late = _loan_due(session, -10)
    promised = _loan_due(session, 10)
    promise = Promise(
        loan_id=promised.id, amount=Decimal("500.00"), promised_date=TODAY - timedelta(days=1),
        state=PromiseState.OPEN, paid_baseline=Decimal("0"),
    )  # fmt: skip
    session.add(promise)
    session.flush()
    report = jobs.daily(session, today=TODAY, settings=fee_settings)
    assert report.late_fees >= 1 and report.promises_broken >= 1
    session.refresh(late)
    session.refresh(promise)
    assert late.fees_charged == Decimal("100.00")
    assert promise.state is PromiseState.BROKEN


def test_the_agency_phone_signs_the_reminder(session, settings):
    signed = settings.model_copy(update={"agency_name": "Acme", "agency_phone": "+919812345678"})
    loan = _loan_due(session, 0)
    jobs.plan_reminders(session, today=TODAY, settings=signed)
    [m] = _reminders(session, [loan.id])
    assert "- Acme +919812345678. Reply STOP" in m.body
