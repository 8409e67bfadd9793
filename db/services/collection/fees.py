"""Late fees: the daily job charges each overdue installment once, after a grace period."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from db import clock
from db.config import LateFeeKind
from db.models import Installment, Loan, LoanEventKind, LoanState
from db.money import q
from db.services.access import LIVE_LOAN, on_hold
from db.services.audit.write import loan_event
from db.services.collection import ledger
from db.services.sms.truth import WithdrawReason, withdraw_for_loan

log = logging.getLogger(__name__)

BATCH = 500
ZERO = Decimal("0")


@dataclass(frozen=True)
class FeeRule:
    """The agency's late fee: a fixed amount, or a percent of what the installment still owes."""

    kind: LateFeeKind
    amount: Decimal
    percent: Decimal

    @property
    def charges(self) -> bool:
        if self.kind is LateFeeKind.FIXED:
            return self.amount > 0
        return self.kind is LateFeeKind.PERCENT and self.percent > 0

    def fee(self, inst: Installment) -> Decimal:
        if self.kind is LateFeeKind.FIXED:
            return q(self.amount)
        return q((inst.amount_due - inst.amount_paid) * self.percent / 100)


def _chargeable(inst: Installment, cutoff: date) -> bool:
    return (
        inst.fee_applied_at is None
        and inst.due_date < cutoff
        and inst.amount_paid < (inst.amount_due)
    )


def _eligible_loan_ids(
    session: Session, cutoff: date, after_id: int, limit: int = BATCH, today: date | None = None
) -> list[int]:
    stmt = (
        select(Installment.loan_id)
        .join(Loan, Loan.id == Installment.loan_id)
        .where(
            Loan.state == LoanState.ACTIVE,
            LIVE_LOAN,
            Loan.id > after_id,
            Installment.fee_applied_at.is_(None),
            Installment.due_date < cutoff,
            Installment.amount_paid < Installment.principal_due + Installment.interest_due,
            # No late fee while the loan is disputed or paused for hardship (issue 11).
            ~on_hold(today if today is not None else clock.utcnow().date()),
        )
        .group_by(Installment.loan_id)
        .order_by(Installment.loan_id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def _charge_loan(session: Session, loan: Loan, cutoff: date, rule: FeeRule) -> int:
    """Charge loan's chargeable installments; write its LATE_FEE event. Returns the count."""
    before = {
        "fees_charged": loan.fees_charged,
        "outstanding": loan.outstanding,
        "version": loan.version,
    }
    now, charged = clock.utcnow(), []
    for inst in loan.installments:
        if _chargeable(inst, cutoff):
            fee = rule.fee(inst)
            # Marked even when a percent rounds to nothing, so it is charged once, ever.
            inst.fee_applied_at = now
            if fee > 0:
                inst.fee_due += fee
                charged.append(f"{inst.seq}:{fee}")
    if not charged:
        return 0
    ledger.refresh(loan)
    ledger.touch(loan, None)
    after = {
        "fees_charged": loan.fees_charged,
        "outstanding": loan.outstanding,
        "version": loan.version,
        "installments": ",".join(charged),
    }
    loan_event(
        session,
        loan_id=loan.id,
        actor=None,
        kind=LoanEventKind.LATE_FEE,
        before=before,
        after=after,
        note=f"late fee on {len(charged)} installment(s)",
    )
    withdraw_for_loan(session, loan=loan, reason=WithdrawReason.AMOUNT_CHANGED)
    return len(charged)


def fee_cutoff(today: date, grace_days: int) -> date:
    """Installments due before this day are overdue past the grace days."""
    return today - timedelta(days=grace_days)


def charge_batch(
    session: Session,
    *,
    cutoff: date,
    rule: FeeRule,
    after_id: int,
    limit: int = BATCH,
    today: date | None = None,
) -> tuple[int, int | None]:
    """Charge the next `limit` loans (by id) after after_id that owe a late fee.

    Returns (installments charged, the last loan id looked at, or None when none was left).
    Each installment is marked when charged, so a batch run twice (a restart, a second
    worker) never charges it twice.
    """
    ids = _eligible_loan_ids(session, cutoff, after_id, limit, today)
    if not ids:
        return 0, None
    # Loans are locked in id order (no deadlock between two workers); each is re-read
    # under the lock, so an installment a concurrent run charged is not charged again.
    loans = session.scalars(
        select(Loan)
        .where(Loan.id.in_(ids), Loan.state == LoanState.ACTIVE, LIVE_LOAN)
        .order_by(Loan.id)
        .with_for_update(of=Loan)
        .options(selectinload(Loan.installments))
        .execution_options(populate_existing=True)
    ).all()
    charged = sum(_charge_loan(session, loan, cutoff, rule) for loan in loans)
    session.flush()
    return charged, ids[-1]


def apply_late_fees(
    session: Session,
    *,
    today: date,
    kind: LateFeeKind,
    amount: Decimal,
    percent: Decimal,
    grace_days: int,
) -> int:
    """Charge the configured fee once on every installment overdue past the grace days.

    All in the caller's transaction; the worker uses charge_batch, one transaction a batch.
    """
    rule = FeeRule(LateFeeKind(kind), amount, percent)
    if not rule.charges:
        return 0
    cutoff = fee_cutoff(today, grace_days)
    charged, after_id = 0, 0
    while True:
        done, last = charge_batch(session, cutoff=cutoff, rule=rule, after_id=after_id, today=today)
        if last is None:
            break
        charged, after_id = charged + done, last
    log.info("late fees charged on %s installments", charged)
    return charged
