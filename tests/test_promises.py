"""Promises (kept, broken, superseded, bounds) and contacts with borrowers."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from db.models import (
    AuditEvent,
    Contact,
    ContactChannel,
    ContactOutcome,
    Frequency,
    LoanEvent,
    LoanEventKind,
    LoanState,
    Promise,
    PromiseState,
    Role,
)
from db.services.audit.write import AuditAction
from db.services.collection import payments, promises
from db.services.errors import Conflict, InvalidInput, NotFound
from db.services.loans.snapshots import loan_view
from tests.factories import actor, make_loan, make_staff

TODAY = date(2026, 3, 15)
D = Decimal


@pytest.fixture
def agent(session):
    return make_staff(session, role=Role.AGENT, name="Asha Agent")


@pytest.fixture
def loan(session, agent):
    return make_loan(
        session,
        agent=agent,
        principal=D("3000.00"),
        count=3,
        frequency=Frequency.WEEKLY,
        first_due=TODAY,
    )


def _promise(session, staff, loan, amount="500.00", days=3, today=TODAY, **kw):
    return promises.record_promise(
        session,
        actor=actor(staff),
        loan_number=loan.loan_number,
        amount=D(amount),
        promised_date=today + timedelta(days=days),
        today=today,
        **kw,
    )


def _pay(session, staff, loan, amount):
    return payments.record_payment(
        session, actor=actor(staff), loan_number=loan.loan_number, amount=D(amount), today=TODAY
    )


def _events(session, loan, kind):
    stmt = select(LoanEvent).where(LoanEvent.loan_id == loan.id, LoanEvent.kind == kind)
    return list(session.scalars(stmt.order_by(LoanEvent.id)))


def test_recording_a_promise_writes_it_with_its_event_and_audit(session, agent, loan):
    _pay(session, agent, loan, "200.00")
    view = _promise(session, agent, loan, note=" will pay after harvest ")
    row = session.get(Promise, view.id)
    assert (view.amount, view.promised_date, view.state) == (
        D("500.00"),
        TODAY + timedelta(days=3),
        PromiseState.OPEN,
    )
    assert view.made_by == "Asha Agent"
    assert row.paid_baseline == D("200.00") and row.note == "will pay after harvest"
    event = _events(session, loan, LoanEventKind.PROMISE)[0]
    assert event.staff_id == agent.id and event.after["promise_id"] == view.id
    audit = session.scalars(
        select(AuditEvent).where(AuditEvent.action == AuditAction.PROMISE_RECORDED.value)
    ).one()
    assert audit.target_id == loan.loan_number and audit.details["amount"] == "500.00"
    assert loan_view(session, loan, today=TODAY).open_promise == view


def test_payments_after_the_promise_keep_it(session, agent, loan):
    _pay(session, agent, loan, "1000.00")  # before the promise: does not count
    view = _promise(session, agent, loan, amount="500.00")
    _pay(session, agent, loan, "300.00")
    assert session.get(Promise, view.id).state == PromiseState.OPEN
    result = _pay(session, agent, loan, "200.00")
    row = session.get(Promise, view.id)
    assert row.state == PromiseState.KEPT and row.resolved_at is not None
    kept = _events(session, loan, LoanEventKind.PROMISE_KEPT)
    assert len(kept) == 1 and kept[0].staff_id == agent.id
    assert kept[0].after["promise_id"] == view.id
    assert result.loan.open_promise is None


def test_settle_promises_counts_only_covered_ones(session, agent, loan):
    view = _promise(session, agent, loan, amount="500.00")
    assert promises.settle_promises(session, loan=loan) == 0
    loan.amount_paid = D("500.00")  # as a payment would leave it
    assert promises.settle_promises(session, loan=loan) == 1
    assert promises.settle_promises(session, loan=loan) == 0
    assert session.get(Promise, view.id).state == PromiseState.KEPT


def test_overdue_promises_are_broken_once_by_the_daily_job(session, agent, loan):
    view = _promise(session, agent, loan, amount="500.00", days=2)
    _pay(session, agent, loan, "499.99")
    due = TODAY + timedelta(days=2)
    assert promises.break_overdue_promises(session, today=due) == 0  # its day is not over
    assert promises.break_overdue_promises(session, today=due + timedelta(days=1)) == 1
    assert promises.break_overdue_promises(session, today=due + timedelta(days=2)) == 0
    row = session.get(Promise, view.id)
    assert row.state == PromiseState.BROKEN and row.resolved_at is not None
    broken = _events(session, loan, LoanEventKind.PROMISE_BROKEN)
    assert len(broken) == 1 and broken[0].staff_id is None
    assert broken[0].note == promises.NOTE_DATE_PASSED


def test_the_daily_job_works_in_batches_and_leaves_covered_promises(session, agent, monkeypatch):
    monkeypatch.setattr(promises, "BATCH", 2)
    loans = [
        make_loan(session, agent=agent, principal=D("1000.00"), first_due=TODAY) for _ in range(5)
    ]
    views = [_promise(session, agent, ln, amount="100.00", days=1) for ln in loans]
    # Covered, but not settled (as if a payment had bypassed the service): not broken.
    loans[0].amount_paid = D("100.00")
    session.flush()
    assert promises.break_overdue_promises(session, today=TODAY + timedelta(days=5)) == 4
    states = [session.get(Promise, v.id).state for v in views]
    assert states == [PromiseState.OPEN] + [PromiseState.BROKEN] * 4


def test_a_new_promise_supersedes_the_open_one(session, agent, loan):
    old = _promise(session, agent, loan, amount="500.00", days=3)
    new = _promise(session, agent, loan, amount="800.00", days=10)
    assert session.get(Promise, old.id).state == PromiseState.BROKEN
    open_rows = session.scalars(
        select(Promise).where(Promise.loan_id == loan.id, Promise.state == PromiseState.OPEN)
    ).all()
    assert [p.id for p in open_rows] == [new.id]
    broken = _events(session, loan, LoanEventKind.PROMISE_BROKEN)
    assert len(broken) == 1 and broken[0].note == promises.NOTE_REPLACED
    assert broken[0].staff_id == agent.id and broken[0].after["promise_id"] == old.id
    listed = promises.list_promises(session, actor=actor(agent), loan_number=loan.loan_number)
    assert [(p.id, p.state) for p in listed] == [
        (new.id, PromiseState.OPEN),
        (old.id, PromiseState.BROKEN),
    ]


@pytest.mark.parametrize(
    ("amount", "days", "code"),
    [
        ("3000.01", 3, "promise_too_much"),
        ("0", 3, "amount_not_positive"),
        ("10.001", 3, "amount_decimals"),
        ("100", -1, "date_past"),
        ("100", 91, "date_far"),
    ],
)
def test_promise_bounds(session, agent, loan, amount, days, code):
    with pytest.raises(InvalidInput) as err:
        _promise(session, agent, loan, amount=amount, days=days)
    assert err.value.code == code
    assert session.scalars(select(Promise).where(Promise.loan_id == loan.id)).all() == []
    assert _events(session, loan, LoanEventKind.PROMISE) == []


def test_promise_edges_today_and_ninety_days_and_whole_outstanding(session, agent, loan):
    assert _promise(session, agent, loan, amount="3000.00", days=0).promised_date == TODAY
    assert _promise(session, agent, loan, days=90).promised_date == TODAY + timedelta(days=90)


def test_no_promise_on_a_closed_loan_or_someone_elses(session, agent, loan):
    other = make_staff(session, role=Role.AGENT)
    with pytest.raises(NotFound):
        _promise(session, other, loan)
    loan.state = LoanState.CLOSED
    with pytest.raises(Conflict) as err:
        _promise(session, agent, loan)
    assert err.value.code == "loan_not_active"


def test_recording_a_contact(session, agent, loan):
    view = promises.record_contact(
        session,
        actor=actor(agent),
        loan_number=loan.loan_number,
        channel=ContactChannel.VISIT,
        outcome=ContactOutcome.NO_ANSWER,
        note="door  locked\n",
    )
    row = session.get(Contact, view.id)
    assert (row.channel, row.outcome, row.note, row.staff_id) == (
        ContactChannel.VISIT,
        ContactOutcome.NO_ANSWER,
        "door locked",
        agent.id,
    )
    assert view.staff_name == "Asha Agent"
    event = _events(session, loan, LoanEventKind.CONTACT)[0]
    assert event.staff_id == agent.id and event.after["outcome"] == "no_answer"
    audit = session.scalars(
        select(AuditEvent).where(AuditEvent.action == AuditAction.CONTACT_RECORDED.value)
    ).one()
    assert audit.details["contact_id"] == view.id
    assert loan_view(session, loan, today=TODAY).last_contact == view


def test_contact_refusals(session, agent, loan):
    other = make_staff(session, role=Role.AGENT)
    with pytest.raises(NotFound):
        promises.record_contact(
            session,
            actor=actor(other),
            loan_number=loan.loan_number,
            channel=ContactChannel.CALL,
            outcome=ContactOutcome.PAID,
            note=None,
        )
    with pytest.raises(InvalidInput) as err:
        promises.record_contact(
            session,
            actor=actor(agent),
            loan_number=loan.loan_number,
            channel=ContactChannel.CALL,
            outcome=ContactOutcome.PAID,
            note="x" * 1001,
        )
    assert err.value.code == "text_long"
    assert _events(session, loan, LoanEventKind.CONTACT) == []
