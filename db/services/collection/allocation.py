"""Allocation: how a payment is spread over a loan's installments, and taken back.

Oldest installment first, its fee before its amount (db.money.allocate decides); one
payment_allocation row per installment touched. A reversal writes the mirror rows, so the
rows of a payment and its reversal add up to nothing.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import clock
from db.models import Installment, Loan, Payment, PaymentAllocation
from db.money import Due, allocate
from db.services.collection import ledger

Allocations = tuple[tuple[int, Decimal, Decimal], ...]  # (installment seq, fee, amount)


def allocate_payment(session: Session, *, loan: Loan, payment: Payment) -> Allocations:
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


def undo_allocations(session: Session, *, original: Payment, reversal: Payment) -> Allocations:
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
