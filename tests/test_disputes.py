"""Disputes and hardship pauses (issue 11): no reminder, no late fee, until resolved or ended.

A disputed loan gets no reminder planned, its queued ones are withdrawn with the change, and
one claimed while the dispute is open is canceled at send time (sandbox never sees it). A
hardship pause does the same until its day, then collection resumes by itself.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from db.config import LateFeeKind
from db.models import (
    AuditEvent,
    HoldKind,
    HoldOutcome,
    Installment,
    LoanHold,
    Message,
    MessageKind,
    MessageStatus,
    Role,
)
from db.services import reports
from db.services.collection import fees
from db.services.errors import AccessDenied, Conflict, InvalidInput, NotFound
from db.services.loans import holds
from db.services.loans.cards import get_loan
from db.services.sms import outbox
from scheduler import jobs
from tests.factories import actor, make_loan, make_staff

TODAY = date(2030, 1, 15)
S = MessageStatus


def _queue_reminder(session, loan, key: str = "r") -> int:
    info = outbox.queue_message(
        session,
        to=loan.borrower.phone,
        body=f"due on {loan.loan_number}",
        kind=MessageKind.REMINDER,
        idempotency_key=f"{key}:{loan.id}",
        borrower_id=loan.borrower_id,
        loan_id=loan.id,
    )
    return info.id


def _dispute(session, who, loan, note: str = "says the amount is wrong", **kw):
    return holds.open_hold(
        session,
        actor=actor(who),
        loan_number=loan.loan_number,
        kind=kw.pop("kind", HoldKind.DISPUTE),
        note=note,
        today=TODAY,
        **kw,
    )


def _reminders(session, loan) -> list[Message]:
    stmt = select(Message).where(Message.loan_id == loan.id, Message.kind == MessageKind.REMINDER)
    return list(session.scalars(stmt))


def test_a_dispute_withdraws_queued_reminders_and_the_planner_plans_none(session, settings, agent):
    loan = make_loan(session, agent=agent, first_due=TODAY)
    other = make_loan(session, agent=agent, first_due=TODAY)
    queued = _queue_reminder(session, loan)
    done = _dispute(session, agent, loan)
    assert done.withdrawn == 1 and done.kind is HoldKind.DISPUTE and done.opened_by
    msg = session.get(Message, queued)
    assert msg.status is S.CANCELED and msg.error_message == "withdrawn: disputed"
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    assert [m.status for m in _reminders(session, loan)] == [S.CANCELED]
    assert len(_reminders(session, other)) == 1  # the undisputed one is reminded
    row = session.scalars(select(AuditEvent).where(AuditEvent.action == "loan_disputed")).one()
    assert row.staff_id == agent.id and row.details["loan_number"] == loan.loan_number


def test_a_rejected_dispute_lets_collection_resume_with_its_reason_audited(
    session, settings, agent, manager
):
    loan = make_loan(session, agent=agent, first_due=TODAY)
    _dispute(session, agent, loan)
    with pytest.raises(InvalidInput):  # a dispute is upheld or rejected, not "ended"
        holds.resolve_hold(
            session,
            actor=actor(manager),
            loan_number=loan.loan_number,
            outcome=HoldOutcome.ENDED,
            reason="no",
            today=TODAY,
        )
    done = holds.resolve_hold(
        session,
        actor=actor(manager),
        loan_number=loan.loan_number,
        outcome=HoldOutcome.REJECTED,
        reason="receipt book shows the full amount",
        today=TODAY,
    )
    assert done.outcome is HoldOutcome.REJECTED
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    assert [m.status for m in _reminders(session, loan)] == [S.QUEUED]
    row = session.scalars(select(AuditEvent).where(AuditEvent.action == "hold_resolved")).one()
    assert row.details["outcome"] == "rejected" and row.staff_id == manager.id
    assert "receipt book" in row.details["reason"]


def test_an_upheld_dispute_stays_on_record_and_the_manager_then_writes_off(session, agent, manager):
    loan = make_loan(session, agent=agent, first_due=TODAY)
    _dispute(session, agent, loan)
    holds.resolve_hold(
        session,
        actor=actor(manager),
        loan_number=loan.loan_number,
        outcome=HoldOutcome.UPHELD,
        reason="agent typed the wrong amount",
        today=TODAY,
    )
    hold = session.scalars(select(LoanHold).where(LoanHold.loan_id == loan.id)).one()
    assert hold.outcome is HoldOutcome.UPHELD and hold.resolved_by_id == manager.id
    assert (
        get_loan(session, actor=actor(manager), loan_number=loan.loan_number, today=TODAY).hold
        is None
    )


def test_who_may_open_and_resolve(session, agent, agent_b, manager):
    loan = make_loan(session, agent=agent, first_due=TODAY)
    with pytest.raises(NotFound):  # another agent's loan does not exist for them
        _dispute(session, agent_b, loan)
    _dispute(session, agent, loan)
    with pytest.raises(Conflict):  # one open dispute at a time
        _dispute(session, manager, loan)
    with pytest.raises(AccessDenied):  # agents open, managers resolve
        holds.resolve_hold(
            session,
            actor=actor(agent),
            loan_number=loan.loan_number,
            outcome=HoldOutcome.REJECTED,
            reason="I checked it",
            today=TODAY,
        )
    with pytest.raises(InvalidInput):
        _dispute(session, agent, make_loan(session, agent=agent), note="x")


def test_hardship_pauses_reminders_and_fees_until_its_day_then_resumes(session, settings, agent):
    loan = make_loan(session, agent=agent, first_due=TODAY - timedelta(days=1))
    until = TODAY + timedelta(days=10)
    with pytest.raises(InvalidInput):
        _dispute(session, agent, loan, kind=HoldKind.HARDSHIP, until=TODAY)
    done = _dispute(session, agent, loan, "lost his job", kind=HoldKind.HARDSHIP, until=until)
    assert done.until == until
    charged = fees.apply_late_fees(
        session,
        today=TODAY + timedelta(days=5),
        kind=LateFeeKind.FIXED,
        amount=Decimal("50"),
        percent=Decimal("0"),
        grace_days=0,
    )
    assert charged == 0
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    assert _reminders(session, loan) == []
    card = get_loan(session, actor=actor(agent), loan_number=loan.loan_number, today=TODAY)
    assert card.hold is not None and card.hold.until == until
    # On its day the pause is over by itself: fees and reminders again.
    later = get_loan(session, actor=actor(agent), loan_number=loan.loan_number, today=until)
    assert later.hold is None
    charged = fees.apply_late_fees(
        session,
        today=until,
        kind=LateFeeKind.FIXED,
        amount=Decimal("50"),
        percent=Decimal("0"),
        grace_days=0,
    )
    assert charged == 1
    inst = session.scalars(select(Installment).where(Installment.loan_id == loan.id)).one()
    assert inst.fee_due == Decimal("50.00")


def test_held_loans_come_first_in_today_with_why(session, agent, manager):
    due = make_loan(session, agent=agent, first_due=TODAY)
    held = make_loan(session, agent=agent, first_due=TODAY + timedelta(days=30))
    _dispute(session, agent, held)
    items = reports.work_list(session, actor=actor(manager), today=TODAY, limit=50)
    mine = [(i.loan.id, i.reason) for i in items if i.loan.id in (due.id, held.id)]
    assert mine == [(held.id, "disputed"), (due.id, "due today")]


def test_a_borrower_dispute_by_sms_needs_no_staff(session, agent):
    loan = make_loan(session, agent=agent, first_due=TODAY)
    _queue_reminder(session, loan)
    done = holds.dispute_by_borrower(session, loan_id=loan.id, note="DISPUTE", today=TODAY)
    assert done is not None and done.opened_by is None and done.withdrawn == 1
    # Texting it again changes nothing.
    assert holds.dispute_by_borrower(session, loan_id=loan.id, note="DISPUTE", today=TODAY) is None


def test_a_manager_sees_the_open_holds(session, agent, manager):
    loan = make_loan(session, agent=agent, first_due=TODAY)
    _dispute(session, agent, loan)
    found = holds.held_loans(session, actor=actor(manager), today=TODAY)
    assert loan.loan_number in [h.loan_number for h in found]
    other = make_staff(session, role=Role.AGENT)
    assert loan.loan_number not in [
        h.loan_number for h in holds.held_loans(session, actor=actor(other), today=TODAY)
    ]
