"""Recording and reversing payments: a payment closes the loan it settles, a reversal reopens
it; promises it covers are kept. How the money spreads over installments is allocation.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import agency as agencies
from db import clock
from db.agency import Agency, agency_of
from db.config import Settings
from db.models import (
    Loan,
    LoanEventKind,
    LoanState,
    Payment,
    PaymentMethod,
    Role,
    Staff,
)
from db.services import access
from db.services.access import Actor
from db.services.audit.write import AuditAction, audit, loan_event
from db.services.collection import ledger
from db.services.collection.allocation import Allocations, allocate_payment, undo_allocations
from db.services.collection.promises import settle_promises
from db.services.errors import Conflict
from db.services.loans.guards import (
    check_amount,
    find_loan,
    find_payment_and_loan,
    refuse_above_owed,
    refuse_stale,
    require_active,
)
from db.services.loans.snapshots import LoanView, loan_view
from db.services.sms import notices
from db.services.sms.truth import WithdrawReason, withdraw_for_loan
from db.validation import clean_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PaymentResult:
    payment_id: int
    loan_number: str
    amount: Decimal
    outstanding: Decimal
    closed: bool
    loan: LoanView
    allocations: Allocations  # (installment seq, fee, amount)
    receipt_number: str | None = None  # None for a reversal


@dataclass(frozen=True)
class PaymentView:
    id: int
    amount: Decimal
    method: PaymentMethod
    paid_at: datetime
    recorded_by: str | None
    note: str | None
    reversed: bool
    reverses_id: int | None


def _balances(loan: Loan) -> dict[str, object]:
    return {
        "amount_paid": loan.amount_paid,
        "outstanding": loan.outstanding,
        "state": loan.state,
        "version": loan.version,
    }


def _booked(
    session: Session,
    loan: Loan,
    actor: Actor,
    what: tuple[LoanEventKind, AuditAction],
    *,
    before: dict[str, object],
    details: dict[str, object],
    note: str | None,
    target: tuple[str, object, dict[str, object]],
) -> None:
    """After a payment or reversal moved money: the loan's balances, its event and audit row.

    target is the audit row's (target type, target id, details).
    """
    ledger.refresh(loan)
    ledger.touch(loan, actor)
    kind, action = what
    loan_event(
        session,
        loan_id=loan.id,
        actor=actor,
        kind=kind,
        before=before,
        after={**_balances(loan), **details},
        note=note,
    )
    target_type, target_id, audited = target
    audit(
        session,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=audited,
    )


def _close_if_paid(session: Session, loan: Loan, actor: Actor) -> bool:
    if loan.outstanding != 0:
        return False
    loan.state, loan.closed_at, loan.state_reason = LoanState.CLOSED, clock.utcnow(), "paid in full"
    loan_event(
        session,
        loan_id=loan.id,
        actor=actor,
        kind=LoanEventKind.CLOSED,
        before={"state": LoanState.ACTIVE},
        after={"state": LoanState.CLOSED},
        note="paid in full",
    )
    return True


def _result(
    session: Session, loan: Loan, payment: Payment, allocations: Allocations, today: date
) -> PaymentResult:
    return PaymentResult(
        payment_id=payment.id,
        loan_number=loan.loan_number,
        amount=payment.amount,
        outstanding=loan.outstanding,
        closed=loan.state == LoanState.CLOSED,
        loan=loan_view(session, loan, today=today),
        allocations=allocations,
        receipt_number=payment.receipt_number,
    )


def receipt_number(paid_at: datetime, payment_id: int) -> str:
    """R-<year>-<payment id>: what the borrower is told, and quotes back when they deny it."""
    return f"R-{paid_at.year}-{payment_id}"


def record_payment(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    amount: Decimal,
    today: date,
    method: PaymentMethod = PaymentMethod.CASH,
    note: str | None = None,
    expected_version: int | None = None,
    max_amount: Decimal = Decimal("100000000"),
    agency: Agency = agencies.DEFAULT,
) -> PaymentResult:
    """Record money received on a loan; it closes the loan when nothing is left owing."""
    amount = check_amount(amount, max_amount=max_amount, agency=agency)
    note = clean_text(note, field="note", max_len=500, required=False)
    loan = find_loan(session, actor=actor, loan_number=loan_number, lock=True)
    refuse_stale(loan, expected_version)
    require_active(loan)
    refuse_above_owed(loan, amount, code="overpay", agency=agency)
    before = _balances(loan)
    payment = Payment(
        loan_id=loan.id,
        amount=amount,
        method=PaymentMethod(method),
        recorded_by_id=actor.staff_id,
        note=note,
    )
    session.add(payment)
    session.flush()
    # From the id: unique however many payments are recorded at once, and never reused.
    payment.receipt_number = receipt_number(payment.paid_at, payment.id)
    allocations = allocate_payment(session, loan=loan, payment=payment)
    details = {
        "payment_id": payment.id,
        "amount": amount,
        "method": payment.method,
        "receipt": payment.receipt_number,
    }
    _booked(
        session,
        loan,
        actor,
        (LoanEventKind.PAYMENT, AuditAction.PAYMENT_RECORDED),
        before=before,
        details=details,
        note=note,
        target=("loan", loan.loan_number, details),
    )
    closed = _close_if_paid(session, loan, actor)
    settle_promises(session, loan=loan, actor=actor)
    # A reminder queued before this payment states an amount no longer owed.
    withdraw_for_loan(
        session,
        loan=loan,
        reason=WithdrawReason.PAID_OFF if closed else WithdrawReason.AMOUNT_CHANGED,
    )
    session.flush()
    log.info("payment %s of %s on loan %s", payment.id, amount, loan.id)
    return _result(session, loan, payment, allocations, today)


def pay_and_notify(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    amount: Decimal,
    expected_version: int,
    today: date,
    settings: Settings,
) -> PaymentResult:
    """record_payment and the borrower's notice of it, in the caller's one transaction."""
    agency = agency_of(settings)
    result = record_payment(
        session,
        actor=actor,
        loan_number=loan_number,
        amount=amount,
        today=today,
        expected_version=expected_version,
        max_amount=settings.max_amount,
        agency=agency,
    )
    notices.payment_notice(
        session,
        loan_id=result.loan.id,
        payment_id=result.payment_id,
        amount=result.amount,
        outstanding=result.outstanding,
        closed=result.closed,
        agency=agency,
        receipt=result.receipt_number,
        notify_payment=settings.notify_payment_received,
        notify_closed=settings.notify_loan_closed,
    )
    return result


def _check_reversible(payment: Payment, loan: Loan) -> None:
    if payment.reverses_id is not None:
        raise Conflict(f"Payment {payment.id} is itself a reversal.", code="is_reversal")
    if payment.reversed_at is not None:
        raise Conflict(f"Payment {payment.id} was already reversed.", code="already_reversed")
    if loan.state == LoanState.WRITTEN_OFF:
        raise Conflict(f"Loan {loan.loan_number} is written off.", code="loan_not_active")


def _reopen_if_owing(session: Session, loan: Loan, actor: Actor) -> None:
    if loan.state != LoanState.CLOSED or loan.outstanding <= 0:
        return
    loan.state, loan.closed_at, loan.state_reason = LoanState.ACTIVE, None, None
    loan_event(
        session,
        loan_id=loan.id,
        actor=actor,
        kind=LoanEventKind.REOPENED,
        before={"state": LoanState.CLOSED},
        after={"state": LoanState.ACTIVE},
        note="payment reversed",
    )


def reverse_payment(
    session: Session, *, actor: Actor, payment_id: int, reason: str, today: date
) -> PaymentResult:
    """Undo a payment with a negative payment row; both rows stay (managers and above)."""
    access.require_role(actor, Role.MANAGER, "reverse a payment")
    reason = clean_text(reason, field="reason", max_len=500)
    original, loan = find_payment_and_loan(session, actor=actor, payment_id=payment_id)
    _check_reversible(original, loan)
    before, now = _balances(loan), clock.utcnow()
    reversal = Payment(
        loan_id=loan.id,
        amount=-original.amount,
        method=original.method,
        recorded_by_id=actor.staff_id,
        note=reason,
        reverses_id=original.id,
        paid_at=now,
    )
    original.reversed_at = now
    session.add(reversal)
    session.flush()
    allocations = undo_allocations(session, original=original, reversal=reversal)
    details = {"payment_id": original.id, "reversal_id": reversal.id, "amount": original.amount}
    _booked(
        session,
        loan,
        actor,
        (LoanEventKind.PAYMENT_REVERSED, AuditAction.PAYMENT_REVERSED),
        before=before,
        details=details,
        note=reason,
        target=(
            "payment",
            original.id,
            {**details, "loan_number": loan.loan_number, "reason": reason},
        ),
    )
    _reopen_if_owing(session, loan, actor)
    withdraw_for_loan(session, loan=loan, reason=WithdrawReason.PAYMENT_REVERSED)
    session.flush()
    return _result(session, loan, reversal, allocations, today)


def list_payments(
    session: Session, *, actor: Actor, loan_number: str, limit: int = 20
) -> list[PaymentView]:
    """The loan's payments and reversals, newest first."""
    loan = find_loan(session, actor=actor, loan_number=loan_number)
    stmt = (
        select(Payment, Staff.name)
        .outerjoin(Staff, Staff.id == Payment.recorded_by_id)
        .where(Payment.loan_id == loan.id)
        .order_by(Payment.paid_at.desc(), Payment.id.desc())
        .limit(max(1, min(limit, 200)))
    )
    return [
        PaymentView(
            p.id,
            p.amount,
            p.method,
            p.paid_at,
            name,
            p.note,
            p.reversed_at is not None,
            p.reverses_id,
        )
        for p, name in session.execute(stmt)
    ]
