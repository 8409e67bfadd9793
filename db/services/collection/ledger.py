"""Keeping a loan's summary columns in step with its installments, and reading them."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from db import clock
from db.models import Installment, Loan
from db.services.access import Actor

ZERO = Decimal("0")


class Bucket(StrEnum):
    """Days-past-due buckets, as collection agencies report them."""

    D1_30 = "1-30"
    D31_60 = "31-60"
    D61_90 = "61-90"
    D90_PLUS = "90+"


_BUCKET_DAYS = {
    Bucket.D1_30: (1, 30),
    Bucket.D31_60: (31, 60),
    Bucket.D61_90: (61, 90),
    Bucket.D90_PLUS: (91, None),
}


def bucket_dates(bucket: Bucket, today: date) -> tuple[date | None, date]:
    """(earliest, latest) next_due_date of loans in bucket today; earliest None = no bound."""
    low, high = _BUCKET_DAYS[bucket]
    latest = today - timedelta(days=low)
    earliest = None if high is None else today - timedelta(days=high)
    return earliest, latest


def bucket_of(days_past_due: int) -> Bucket | None:
    for bucket, (low, high) in _BUCKET_DAYS.items():
        if days_past_due >= low and (high is None or days_past_due <= high):
            return bucket
    return None


def is_settled(inst: Installment) -> bool:
    owed = inst.principal_due + inst.interest_due
    return inst.amount_paid >= owed and inst.fee_paid >= inst.fee_due


def refresh(loan: Loan) -> None:
    """Recompute the loan's totals and next due date from its installments."""
    insts = loan.installments
    loan.amount_payable = sum((i.principal_due + i.interest_due for i in insts), ZERO)
    loan.fees_charged = sum((i.fee_due for i in insts), ZERO)
    loan.amount_paid = sum((i.amount_paid + i.fee_paid for i in insts), ZERO)
    unpaid = [i.due_date for i in insts if not is_settled(i)]
    loan.next_due_date = min(unpaid) if unpaid else None


def touch(loan: Loan, actor: Actor | None) -> None:
    """Mark the loan changed: a new version (stale buttons stop working), who and when."""
    loan.version = (loan.version or 0) + 1
    loan.updated_at = clock.utcnow()
    loan.updated_by_id = actor.staff_id if actor else None


def days_past_due(loan: Loan, today: date) -> int:
    if loan.next_due_date is None or loan.next_due_date >= today:
        return 0
    return (today - loan.next_due_date).days


def overdue_amount(loan: Loan, today: date) -> Decimal:
    """What is owed on installments whose due date has passed (fees included)."""
    return sum(
        (
            i.principal_due + i.interest_due + i.fee_due - i.amount_paid - i.fee_paid
            for i in loan.installments
            if i.due_date < today
        ),
        ZERO,
    )


def next_due(loan: Loan) -> tuple[date | None, Decimal]:
    """The oldest unsettled installment's date and what it still owes."""
    for inst in loan.installments:
        if not is_settled(inst):
            owed = inst.principal_due + inst.interest_due + inst.fee_due
            return inst.due_date, owed - inst.amount_paid - inst.fee_paid
    return None, ZERO
