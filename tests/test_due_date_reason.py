"""An agent moving a due date by more than 30 days must give a reason, kept in the audit
(issue 9 item 13), and the move waits for a manager's approval (issue 11); managers and
admins need neither; short moves ask nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from db.models import ApprovalKind, ApprovalRequest, AuditEvent, Loan
from db.services.approvals.decide import decide
from db.services.audit.write import AuditAction
from db.services.errors import InvalidInput
from db.services.loans.changes import MAX_AGENT_DUE_SHIFT_DAYS, EditableField, edit_loan
from tests.bot_harness import BotHarness
from tests.bot_helpers import agent_card, button, is_card, tap
from tests.factories import actor, make_loan


def _move(session, who, loan, days: int, reason: str | None = None):
    new = loan.next_due_date + timedelta(days=days)
    return edit_loan(
        session,
        actor=actor(who),
        loan_number=loan.loan_number,
        field=EditableField.NEXT_DUE_DATE,
        value=new.isoformat(),
        expected_version=None,
        today=loan.next_due_date - timedelta(days=5),
        reason=reason,
    )


def _edit_audit(session, loan_id: int) -> AuditEvent:
    return session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == AuditAction.LOAN_EDITED, AuditEvent.target_id == str(loan_id))
        .order_by(AuditEvent.id.desc())
    ).first()


def test_agent_needs_a_reason_beyond_30_days_and_it_is_audited(session, agent_a, manager):
    loan = make_loan(session, agent=agent_a, count=3)
    _move(session, agent_a, loan, MAX_AGENT_DUE_SHIFT_DAYS)  # 30 days: no reason asked
    assert _edit_audit(session, loan.id).details["note"] is None
    with pytest.raises(InvalidInput) as err:
        _move(session, agent_a, loan, MAX_AGENT_DUE_SHIFT_DAYS + 1)
    assert err.value.code == "reason_needed"
    with pytest.raises(InvalidInput) as err:
        _move(session, agent_a, loan, 60, reason=" x ")
    assert err.value.code == "reason_short"
    before = loan.next_due_date
    asked = _move(session, agent_a, loan, 60, reason="Harvest in March, agreed with borrower")
    # Since issue 11 the long move waits for a manager's approval; the reason travels with it.
    assert asked.approval_id is not None and loan.next_due_date == before
    decide(
        session,
        actor=actor(manager),
        approval_id=asked.approval_id,
        approve=True,
        today=before - timedelta(days=5),
    )
    assert loan.next_due_date == before + timedelta(days=60)
    row = _edit_audit(session, loan.id)
    assert row.details["note"] == "Harvest in March, agreed with borrower"
    assert row.staff_id == manager.id
    request = session.scalars(
        select(AuditEvent).where(AuditEvent.action == AuditAction.APPROVAL_REQUESTED)
    ).one()
    assert request.staff_id == agent_a.id and request.details["note"].startswith("Harvest")


def test_managers_move_due_dates_without_a_reason(session, agent_a, manager):
    loan = make_loan(session, agent=agent_a)
    _move(session, manager, loan, 90)
    assert _edit_audit(session, loan.id).staff_id == manager.id


async def test_the_bot_asks_an_agent_why(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, loan, card = await agent_card(h)
        due = h.db(lambda s: s.get(Loan, loan.id).next_due_date)
        fields = await tap(h, agent, card, "Edit", contains="What do you want to change")
        await tap(h, agent, fields, "Next due date", contains="Send the new value")
        ask = await h.say(agent, (due + timedelta(days=45)).isoformat())
        assert "needs a reason" in ask["text"] and "Send the reason" in ask["text"]
        again = await h.say(agent, "no")
        assert again["text"].startswith("Give a reason of at least 3")
        summary = await h.say(agent, "Borrower <in hospital>", contains="Please check")
        assert "Reason: Borrower <in hospital>" in summary["text"]
        assert button(summary, "Confirm")
        await tap(h, agent, summary, "Confirm", contains="needs a manager's approval")
        await h.wait(agent, predicate=is_card)
        row = h.db(lambda s: s.scalars(select(ApprovalRequest)).one())
        assert row.note == "Borrower <in hospital>" and row.kind is ApprovalKind.DUE_DATE_MOVE
        assert row.payload["to"] == (due + timedelta(days=45)).isoformat()
        assert h.db(lambda s: s.get(Loan, loan.id).next_due_date) == due
