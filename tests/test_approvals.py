"""Four eyes (issue 11): requests, decisions, the first decision winning, the audit."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from db import clock
from db.models import (
    ApprovalCard,
    ApprovalKind,
    ApprovalRequest,
    ApprovalState,
    AuditEvent,
    Loan,
    LoanState,
    Payment,
    Role,
)
from db.services.approvals import cards
from db.services.approvals.decide import decide
from db.services.approvals.kinds import request_reversal, request_write_off
from db.services.approvals.requests import list_pending, withdraw
from db.services.audit.write import AuditAction
from db.services.collection.payments import record_payment
from db.services.errors import AccessDenied, Conflict, InvalidInput
from db.services.staff.sessions import open_session
from tests.factories import actor, make_loan, make_staff


def _ask(session, who, loan, today, **extra):
    return request_write_off(
        session,
        actor=actor(who),
        loan_number=loan.loan_number,
        reason="borrower moved away",
        expected_version=None,
        today=today,
        **extra,
    )


def _actions(session, target_id: int) -> list[str]:
    stmt = select(AuditEvent.action).where(
        AuditEvent.target_type == "approval", AuditEvent.target_id == str(target_id)
    )
    return list(session.scalars(stmt.order_by(AuditEvent.id)))


def test_a_write_off_is_a_request_until_another_person_approves(
    session, agent_a, manager, admin, today
):
    loan = make_loan(session, agent=agent_a)
    asked = _ask(session, manager, loan, today)
    assert asked.state is ApprovalState.PENDING and asked.kind is ApprovalKind.WRITE_OFF
    assert asked.note == "borrower moved away" and asked.payload["outstanding"] == "10000.00"
    assert session.get(Loan, loan.id).state is LoanState.ACTIVE
    cards = session.scalars(
        select(ApprovalCard.staff_id).where(ApprovalCard.approval_id == asked.id)
    )
    assert manager.id not in set(cards)  # the requester gets no card of their own request
    with pytest.raises(AccessDenied) as err:
        decide(session, actor=actor(manager), approval_id=asked.id, approve=True, today=today)
    assert err.value.code == "own_request"
    with pytest.raises(AccessDenied):
        decide(session, actor=actor(agent_a), approval_id=asked.id, approve=True, today=today)
    done = decide(session, actor=actor(admin), approval_id=asked.id, approve=True, today=today)
    assert done.approval.state is ApprovalState.APPROVED and done.approval.decided_by == admin.name
    assert session.get(Loan, loan.id).state is LoanState.WRITTEN_OFF
    assert _actions(session, asked.id) == ["approval_requested", "approval_approved"]
    written = session.scalars(
        select(AuditEvent).where(AuditEvent.action == AuditAction.LOAN_WRITTEN_OFF)
    ).one()
    assert written.staff_id == admin.id and written.details["note"] == "borrower moved away"


def test_agents_cannot_ask_for_write_offs_and_requests_are_checked_first(
    session, agent_a, manager, today
):
    loan = make_loan(session, agent=agent_a)
    with pytest.raises(AccessDenied):
        _ask(session, agent_a, loan, today)
    with pytest.raises(InvalidInput):
        request_write_off(
            session,
            actor=actor(manager),
            loan_number=loan.loan_number,
            reason="ab",
            expected_version=None,
            today=today,
        )
    _ask(session, manager, loan, today)
    with pytest.raises(Conflict) as err:
        _ask(session, manager, loan, today)
    assert err.value.code == "approval_pending"
    assert session.get(Loan, loan.id).state is LoanState.ACTIVE


def test_an_admins_write_off_waits_for_another_person(session, agent_a, manager, admin, today):
    loan = make_loan(session, agent=agent_a)
    asked = _ask(session, admin, loan, today)
    with pytest.raises(AccessDenied):
        decide(session, actor=actor(admin), approval_id=asked.id, approve=True, today=today)
    decide(session, actor=actor(manager), approval_id=asked.id, approve=True, today=today)
    assert session.get(Loan, loan.id).state is LoanState.WRITTEN_OFF


def test_a_write_off_above_the_limit_is_for_admins(session, agent_a, manager, admin, today):
    loan = make_loan(session, agent=agent_a)
    other = make_staff(session, role=Role.MANAGER)
    asked = _ask(session, manager, loan, today, admin_above=D("5000"))
    assert asked.approver_role is Role.ADMIN
    assert [v.id for v in list_pending(session, actor=actor(other))] == []
    assert [v.id for v in list_pending(session, actor=actor(admin))] == [asked.id]
    with pytest.raises(AccessDenied, match="Only admins"):
        decide(session, actor=actor(other), approval_id=asked.id, approve=True, today=today)
    decide(session, actor=actor(admin), approval_id=asked.id, approve=True, today=today)


def test_reject_needs_a_reason_and_changes_nothing(session, agent_a, manager, admin, today):
    loan = make_loan(session, agent=agent_a)
    asked = _ask(session, manager, loan, today)
    for reason in (None, "", "no"):
        with pytest.raises(InvalidInput):
            decide(
                session,
                actor=actor(admin),
                approval_id=asked.id,
                approve=False,
                reason=reason,
                today=today,
            )
    done = decide(
        session,
        actor=actor(admin),
        approval_id=asked.id,
        approve=False,
        reason="she paid <half> last week",
        today=today,
    )
    assert done.approval.state is ApprovalState.REJECTED
    assert done.approval.reason == "she paid <half> last week"
    assert session.get(Loan, loan.id).state is LoanState.ACTIVE
    rejected = session.scalars(
        select(AuditEvent).where(AuditEvent.action == AuditAction.APPROVAL_REJECTED)
    ).one()
    assert rejected.details["reason"] == "she paid <half> last week"


def test_the_first_decision_wins(session, agent_a, manager, admin, today):
    loan = make_loan(session, agent=agent_a)
    other = make_staff(session, role=Role.MANAGER)
    asked = _ask(session, manager, loan, today)
    decide(session, actor=actor(admin), approval_id=asked.id, approve=True, today=today)
    with pytest.raises(Conflict, match=f"already approved by {admin.name}"):
        decide(
            session,
            actor=actor(other),
            approval_id=asked.id,
            approve=False,
            reason="not so fast",
            today=today,
        )
    assert _actions(session, asked.id) == ["approval_requested", "approval_approved"]


def test_a_withdrawn_request_cannot_be_decided(session, agent_a, manager, admin, today):
    loan = make_loan(session, agent=agent_a)
    asked = _ask(session, manager, loan, today)
    with pytest.raises(AccessDenied):
        withdraw(session, actor=actor(admin), approval_id=asked.id)
    assert withdraw(session, actor=actor(manager), approval_id=asked.id).state is (
        ApprovalState.WITHDRAWN
    )
    with pytest.raises(Conflict, match=f"withdrawn by {manager.name}"):
        decide(session, actor=actor(admin), approval_id=asked.id, approve=True, today=today)
    assert session.get(Loan, loan.id).state is LoanState.ACTIVE
    assert _actions(session, asked.id) == ["approval_requested", "approval_withdrawn"]


def test_an_approval_no_longer_valid_is_refused_and_changes_nothing(
    session, agent_a, manager, admin, today
):
    loan = make_loan(session, agent=agent_a)
    asked = _ask(session, manager, loan, today)
    record_payment(
        session, actor=actor(agent_a), loan_number=loan.loan_number, amount=D("10000"), today=today
    )
    assert session.get(Loan, loan.id).state is LoanState.CLOSED
    savepoint = session.begin_nested()  # the adapter's transaction, rolled back on refusal
    with pytest.raises(Conflict, match="is closed"):
        decide(session, actor=actor(admin), approval_id=asked.id, approve=True, today=today)
    savepoint.rollback()
    assert session.get(ApprovalRequest, asked.id).state is ApprovalState.PENDING
    assert session.get(Loan, loan.id).state is LoanState.CLOSED


def test_a_reversal_waits_for_approval(session, agent_a, manager, admin, today):
    loan = make_loan(session, agent=agent_a)
    paid = record_payment(
        session, actor=actor(agent_a), loan_number=loan.loan_number, amount=D("2500"), today=today
    )
    payment_id = paid.payment_id
    asked = request_reversal(
        session, actor=actor(manager), payment_id=payment_id, reason="bounced cheque", today=today
    )
    assert session.get(Payment, payment_id).reversed_at is None
    assert session.get(Loan, loan.id).amount_paid == D("2500")
    decide(session, actor=actor(admin), approval_id=asked.id, approve=True, today=today)
    assert session.get(Payment, payment_id).reversed_at is not None
    assert session.get(Loan, loan.id).amount_paid == D("0")


def test_close_then_write_off_request_is_refused_at_once(session, agent_a, manager, today):
    loan = make_loan(session, agent=agent_a)
    record_payment(
        session, actor=actor(agent_a), loan_number=loan.loan_number, amount=D("10000"), today=today
    )
    with pytest.raises(Conflict):
        _ask(session, manager, loan, today)
    assert session.scalars(select(ApprovalRequest)).first() is None


def test_two_approvers_at_once_make_one_decision(committed):
    today = date.today()
    with committed() as s:
        agent = make_staff(s, role=Role.AGENT)
        asker, one, two = (make_staff(s, role=Role.MANAGER) for _ in range(3))
        loan = make_loan(s, agent=agent, first_due=today + timedelta(days=5))
        approval_id = _ask(s, asker, loan, today).id
        s.commit()
    barrier, outcomes = threading.Barrier(2), []

    def press(who, approve: bool) -> None:
        with committed() as s:
            barrier.wait()
            try:
                decide(
                    s,
                    actor=actor(who),
                    approval_id=approval_id,
                    approve=approve,
                    reason=None if approve else "not this one",
                    today=today,
                )
                s.commit()
                outcomes.append("decided")
            except Conflict as exc:
                s.rollback()
                outcomes.append(exc.code)

    threads = [
        threading.Thread(target=press, args=(one, True)),
        threading.Thread(target=press, args=(two, False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["approval_decided", "decided"]
    with committed() as s:
        row = s.get(ApprovalRequest, approval_id)
        state = s.get(Loan, loan.id).state
        decisions = s.scalars(
            select(AuditEvent.action).where(
                AuditEvent.action.in_(["approval_approved", "approval_rejected"])
            )
        ).all()
        assert len(decisions) == 1
        assert (state is LoanState.WRITTEN_OFF) == (row.state is ApprovalState.APPROVED)


def test_an_old_request_is_reminded_once_to_logged_in_approvers(
    session, agent_a, manager, admin, today
):
    for person in (manager, admin):
        person.telegram_chat_id = person.telegram_user_id
        open_session(session, person)
    loan = make_loan(session, agent=agent_a)
    asked = _ask(session, manager, loan, today)
    limits = {"hours": 4, "idle_minutes": 10**6, "max_hours": 10**6}
    assert cards.due_reminders(session, **limits) == []
    later = clock.utcnow() + timedelta(hours=5)
    [(view, chats)] = cards.due_reminders(session, now=later, **limits)
    assert view.id == asked.id and chats == [admin.telegram_chat_id]
    assert cards.due_reminders(session, now=later + timedelta(hours=5), **limits) == []


def test_the_track_record_counts_installments_paid_by_their_due_date(session, agent_a, today):
    loan = make_loan(session, agent=agent_a, count=2, first_due=today - timedelta(days=40))
    first, second = loan.installments
    first.paid_at = clock.utcnow() - timedelta(days=45)  # before its due date
    second.paid_at = None  # due ten days ago, unpaid
    session.flush()
    record = cards.track_record(session, agent_id=agent_a.id, today=today)
    assert (record.loans, record.on_time_percent, record.broken_promises) == (1, 50, 0)
