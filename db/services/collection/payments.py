"""Recording and reversing payments: allocation to installments, closing and reopening loans."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db import agency as agencies
from db import clock
from db.agency import Agency
from db.models import (
    Installment,
    Loan,
    LoanEventKind,
    LoanState,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    Role,
    Staff,
)
from db.money import Due, allocate
from db.services import access
from db.services.access import Actor
from db.services.audit.write import AuditAction, audit, loan_event
from db.services.collection import ledger
from db.services.collection.promises import (
    check_amount,
    find_loan,
    refuse_above_owed,
    require_active,
    settle_promises,
)
from db.services.errors import Conflict, NotFound
from db.services.loans.snapshots import LoanView, loan_view
from db.services.sms.truth import WithdrawReason, withdraw_for_loan
from db.validation import clean_text

log = logging.getLogger(__name__)

Allocations = tuple[tuple[int, Decimal, Decimal], ...]


@dataclass(frozen=True)
class PaymentResult:
    payment_id: int
    loan_number: str
    amount: Decimal
    outstanding: Decimal
    closed: bool
    loan: LoanView
    allocations: Allocations  # (installment seq, fee, amount)


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


def _locked_loan(session: Session, actor: Actor, loan_number: str) -> Loan:
    """The loan actor may see, its row locked until the transaction ends."""
    return find_loan(session, actor=actor, loan_number=loan_number, lock=True)


def _balances(loan: Loan) -> dict[str, object]:
    return {
        "amount_paid": loan.amount_paid,
        "outstanding": loan.outstanding,
        "state": loan.state,
        "version": loan.version,
    }


def _check_version(loan: Loan, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != loan.version:
        raise Conflict(
            f"Loan {loan.loan_number} changed since it was shown; open it again.",
            code="stale",
            version=loan.version,
        )


def _allocate(session: Session, loan: Loan, payment: Payment) -> Allocations:
    """Spread payment over the installments, oldest first and fee first; write the rows."""
    insts = loan.installments
    dues = [Due(i.fee_due - i.fee_paid, i.amount_due - i.amount_paid) for i in insts]
    now, rows = clock.utcnow(), []
    for part in allocate(payment.amount, dues):
        inst = insts[part.index]
        inst.fee_paid += part.fee
        inst.amount_paid += part.amount
        if inst.paid_at is None and ledger.is_settled(inst):
            inst.paid_at = now
        session.add(
            PaymentAllocation(
                payment_id=payment.id,
                installment_id=inst.id,
                fee_amount=part.fee,
                amount=part.amount,
            )
        )
        rows.append((inst.seq, part.fee, part.amount))
    return tuple(rows)


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
    )


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
    loan = _locked_loan(session, actor, loan_number)
    _check_version(loan, expected_version)
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
    allocations = _allocate(session, loan, payment)
    ledger.refresh(loan)
    ledger.touch(loan, actor)
    details = {"payment_id": payment.id, "amount": amount, "method": payment.method}
    loan_event(
        session,
        loan_id=loan.id,
        actor=actor,
        kind=LoanEventKind.PAYMENT,
        before=before,
        after={**_balances(loan), **details},
        note=note,
    )
    audit(
        session,
        actor=actor,
        action=AuditAction.PAYMENT_RECORDED,
        target_type="loan",
        target_id=loan.loan_number,
        details=details,
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


def _payment_and_loan(session: Session, actor: Actor, payment_id: int) -> tuple[Payment, Loan]:
    """The payment and its loan, the loan row locked first (as record_payment does)."""
    loan_id = select(Payment.loan_id).where(Payment.id == payment_id).scalar_subquery()
    stmt = (
        select(Loan)
        .where(Loan.id == loan_id)
        .with_for_update(of=Loan)
        .options(selectinload(Loan.installments))
        .execution_options(populate_existing=True)
    )
    loan = session.scalars(stmt).one_or_none()
    if loan is None:
        raise NotFound(f"No payment {payment_id} found.", code="payment_not_found")
    access.check_loan(actor, loan, loan.loan_number)
    access.refuse_archived(loan)
    payment = session.scalars(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    ).one()
    return payment, loan


def _undo_allocations(session: Session, original: Payment, reversal: Payment) -> Allocations:
    """Take back exactly what original put on each installment; mirror rows on reversal."""
    stmt = (
        select(PaymentAllocation, Installment)
        .join(Installment, Installment.id == PaymentAllocation.installment_id)
        .where(PaymentAllocation.payment_id == original.id)
        .order_by(Installment.seq)
    )
    rows = []
    for alloc, inst in session.execute(stmt):
        inst.fee_paid -= alloc.fee_amount
        inst.amount_paid -= alloc.amount
        if not ledger.is_settled(inst):
            inst.paid_at = None
        session.add(
            PaymentAllocation(
                payment_id=reversal.id,
                installment_id=inst.id,
                fee_amount=-alloc.fee_amount,
                amount=-alloc.amount,
            )
        )
        rows.append((inst.seq, -alloc.fee_amount, -alloc.amount))
    return tuple(rows)


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
    original, loan = _payment_and_loan(session, actor, payment_id)
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
    allocations = _undo_allocations(session, original, reversal)
    ledger.refresh(loan)
    ledger.touch(loan, actor)
    details = {"payment_id": original.id, "reversal_id": reversal.id, "amount": original.amount}
    loan_event(
        session,
        loan_id=loan.id,
        actor=actor,
        kind=LoanEventKind.PAYMENT_REVERSED,
        before=before,
        after={**_balances(loan), **details},
        note=reason,
    )
    audit(
        session,
        actor=actor,
        action=AuditAction.PAYMENT_REVERSED,
        target_type="payment",
        target_id=original.id,
        details={**details, "loan_number": loan.loan_number, "reason": reason},
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
