"""Loans are archived, never deleted (issue 9 item 8): every row kept, hidden everywhere."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select

from db.agency import Agency
from db.models import (
    AuditEvent,
    Contact,
    ContactChannel,
    ContactOutcome,
    FinancialRecordDeleted,
    Installment,
    Loan,
    LoanEvent,
    LoanEventKind,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    Payment,
    PaymentAllocation,
    Promise,
)
from db.services import reports
from db.services.collection import payments
from db.services.collection.promises import record_contact, record_promise
from db.services.errors import AccessDenied, Conflict, InvalidInput, NotFound
from db.services.loans import archive as loan_archive
from db.services.loans.add import get_loan
from db.services.loans.history import loan_history
from db.services.loans.search import LoanFilter, list_loans, search_loans
from db.services.sms.inbound import handle_inbound
from db.services.sms.outbox import queue_message
from db.services.sms.reminders import queue_reminder_now
from scheduler import jobs
from tests.factories import actor, make_borrower, make_loan

UTC = ZoneInfo("UTC")


def _counts(session, loan_id: int) -> dict[str, int]:
    def n(model, col) -> int:
        return session.scalar(select(func.count()).select_from(model).where(col == loan_id))

    allocations = (
        select(func.count())
        .select_from(PaymentAllocation)
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .where(Payment.loan_id == loan_id)
    )
    return {
        "installments": n(Installment, Installment.loan_id),
        "payments": n(Payment, Payment.loan_id),
        "allocations": session.scalar(allocations),
        "promises": n(Promise, Promise.loan_id),
        "contacts": n(Contact, Contact.loan_id),
        "history": n(LoanEvent, LoanEvent.loan_id),
    }


@pytest.fixture
def busy_loan(session, agent_a, today):
    """A loan with a payment (and its allocation), a promise, a contact and a queued reminder."""
    borrower = make_borrower(session, name="Meera Archive")
    loan = make_loan(
        session,
        agent=agent_a,
        borrower=borrower,
        count=3,
        first_due=today - timedelta(days=5),
        loan_number="T-ARC-1",
    )
    payments.record_payment(
        session, actor=actor(agent_a), loan_number="T-ARC-1", amount=Decimal("1000"), today=today
    )
    record_promise(
        session,
        actor=actor(agent_a),
        loan_number="T-ARC-1",
        amount=Decimal("500"),
        promised_date=today + timedelta(days=2),
        today=today,
    )
    session.add(
        Contact(
            loan_id=loan.id,
            channel=ContactChannel.CALL,
            outcome=ContactOutcome.PROMISED,
            staff_id=agent_a.id,
        )
    )
    queue_message(
        session,
        to=borrower.phone,
        body="Rs 9000 due",
        kind=MessageKind.REMINDER,
        idempotency_key="arc-test-1",
        borrower_id=borrower.id,
        loan_id=loan.id,
    )
    session.flush()
    return loan


def test_archive_keeps_every_row_withdraws_reminders_and_audits(session, busy_loan, admin):
    before = _counts(session, busy_loan.id)
    assert all(before.values()), before
    done = loan_archive.archive_loan(
        session, actor=actor(admin), loan_number="t-arc-1", reason="duplicate of T-ARC-2"
    )
    assert done.withdrawn == 1 and done.reason == "duplicate of T-ARC-2"
    session.expire_all()
    after = _counts(session, busy_loan.id)
    assert after == {**before, "history": before["history"] + 1}
    loan = session.get(Loan, busy_loan.id)
    assert loan.archived_at is not None and loan.archived_by_id == admin.id
    message = session.scalar(select(Message).where(Message.loan_id == loan.id))
    assert message.status is MessageStatus.CANCELED
    why = session.scalars(
        select(MessageEvent.detail).where(
            MessageEvent.message_id == message.id, MessageEvent.status == "canceled"
        )
    ).all()
    assert why == ["withdrawn: archived"]
    [row] = session.scalars(select(AuditEvent).where(AuditEvent.action == "loan_archived")).all()
    assert row.staff_id == admin.id and row.details["reason"] == "duplicate of T-ARC-2"
    assert row.details["withdrawn"] == 1


def test_archived_loan_is_hidden_from_lists_search_reports_and_jobs(
    session, busy_loan, agent_a, manager, admin, today, settings
):
    phone = busy_loan.borrower.phone
    loan_archive.archive_loan(session, actor=actor(admin), loan_number="T-ARC-1", reason="dup")
    for who in (agent_a, manager, admin):
        page = list_loans(session, actor=actor(who), today=today, filter=LoanFilter.ALL)
        assert busy_loan.id not in [item.id for item in page.items]
        for text in ("T-ARC-1", "Meera", phone):
            found, _ = search_loans(session, actor=actor(who), text=text, today=today)
            assert found == [], (who.role, text)
        assert busy_loan.id not in [
            w.loan.id for w in reports.work_list(session, actor=actor(who), today=today)
        ]
        book = reports.portfolio(session, actor=actor(who), today=today, tz=UTC)
        assert book.loans_active == 0 and book.collected_today == 0
    # No reminder planned, no late fee charged, the promise not broken by the daily job.
    assert jobs.plan_reminders(session, today=today, settings=settings) == 0
    later = today + timedelta(days=40)
    assert jobs.daily(session, today=later, settings=settings).promises_broken == 0
    # A borrower texting BAL hears of no loan.
    result = handle_inbound(
        session,
        provider_sid="SMarc1",
        from_phone=phone,
        body="BAL",
        agency=Agency(name="Agency"),
        today=today,
    )
    assert result.reply_queued and result.relay is None
    reply = session.scalar(
        select(Message.body).where(Message.kind == MessageKind.REPLY, Message.to_phone == phone)
    )
    assert "no active loans" in reply and "T-ARC-1" not in reply


def test_only_admins_archive_open_and_restore(
    session, busy_loan, agent_a, manager, admin, today, settings
):
    for who in (agent_a, manager):
        with pytest.raises(AccessDenied):
            loan_archive.archive_loan(
                session, actor=actor(who), loan_number="T-ARC-1", reason="mine to hide"
            )
    with pytest.raises(InvalidInput):
        loan_archive.archive_loan(session, actor=actor(admin), loan_number="T-ARC-1", reason=" ")
    loan_archive.archive_loan(session, actor=actor(admin), loan_number="T-ARC-1", reason="dup")
    # Agents and managers get the same answer as for a loan that never existed.
    for who in (agent_a, manager):
        with pytest.raises(NotFound):
            get_loan(session, actor=actor(who), loan_number="T-ARC-1", today=today)
        with pytest.raises(AccessDenied):
            list_loans(session, actor=actor(who), today=today, filter=LoanFilter.ARCHIVED)
        with pytest.raises((AccessDenied, NotFound)):
            loan_archive.restore_loan(
                session, actor=actor(who), loan_number="T-ARC-1", reason="want it back"
            )
    card = get_loan(session, actor=actor(admin), loan_number="T-ARC-1", today=today)
    assert card.archived_at is not None and card.archive_reason == "dup"
    history = loan_history(session, actor=actor(admin), loan_number="T-ARC-1")
    assert any(item.kind == LoanEventKind.ARCHIVED for item in history.items)
    listed = list_loans(session, actor=actor(admin), today=today, filter=LoanFilter.ARCHIVED)
    assert [item.id for item in listed.items] == [busy_loan.id]
    # Nothing changes an archived loan, not even for an admin, until it is restored.
    with pytest.raises(Conflict, match="archived"):
        payments.record_payment(
            session, actor=actor(admin), loan_number="T-ARC-1", amount=Decimal("10"), today=today
        )
    with pytest.raises(Conflict, match="archived"):
        loan_archive.archive_loan(
            session, actor=actor(admin), loan_number="T-ARC-1", reason="again"
        )
    with pytest.raises(Conflict, match="archived"):
        record_contact(
            session,
            actor=actor(admin),
            loan_number="T-ARC-1",
            channel=ContactChannel.CALL,
            outcome=ContactOutcome.NO_ANSWER,
            note=None,
        )
    with pytest.raises(Conflict, match="archived"):
        queue_reminder_now(
            session, actor=actor(admin), loan_number="T-ARC-1", today=today, settings=settings
        )
    loan_archive.restore_loan(
        session, actor=actor(admin), loan_number="T-ARC-1", reason="archived by mistake"
    )
    page = list_loans(session, actor=actor(agent_a), today=today, filter=LoanFilter.ALL)
    assert busy_loan.id in [item.id for item in page.items]
    kinds = session.scalars(
        select(LoanEvent.kind).where(LoanEvent.loan_id == busy_loan.id).order_by(LoanEvent.id)
    ).all()
    assert kinds[-2:] == [LoanEventKind.ARCHIVED, LoanEventKind.RESTORED]
    with pytest.raises(Conflict, match="not archived"):
        loan_archive.restore_loan(
            session, actor=actor(admin), loan_number="T-ARC-1", reason="twice"
        )


@pytest.mark.parametrize(
    "model", [Loan, Installment, Payment, PaymentAllocation, Promise, Contact, LoanEvent]
)
def test_nothing_deletes_a_financial_record(session, busy_loan, model):
    row = session.scalars(select(model)).first()
    assert row is not None
    session.delete(row)
    with pytest.raises(FinancialRecordDeleted):
        session.flush()
    session.rollback()
    with pytest.raises(FinancialRecordDeleted):
        session.execute(delete(model))
