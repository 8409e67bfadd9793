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
from db.services import ledger
from db.services.audit import loan_event
from db.services.message_truth import WithdrawReason, withdraw_for_loan

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
    return inst.fee_applied_at is None and inst.due_date < cutoff and inst.amount_paid < (
        inst.amount_due
    )


def _eligible_loan_ids(session: Session, cutoff: date, after_id: int) -> list[int]:
    stmt = (
        select(Installment.loan_id)
        .join(Loan, Loan.id == Installment.loan_id)
        .where(
            Loan.state == LoanState.ACTIVE,
            Loan.id > after_id,
            Installment.fee_applied_at.is_(None),
            Installment.due_date < cutoff,
            Installment.amount_paid < Installment.principal_due + Installment.interest_due,
        )
        .group_by(Installment.loan_id)
        .order_by(Installment.loan_id)
        .limit(BATCH)
    )
    return list(session.scalars(stmt))


def _charge_loan(session: Session, loan: Loan, cutoff: date, rule: FeeRule) -> int:
    """Charge loan's chargeable installments; write its LATE_FEE event. Returns the count."""
    before = {"fees_charged": loan.fees_charged, "outstanding": loan.outstanding,
              "version": loan.version}
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
    after = {"fees_charged": loan.fees_charged, "outstanding": loan.outstanding,
             "version": loan.version, "installments": ",".join(charged)}
    loan_event(session, loan_id=loan.id, actor=None, kind=LoanEventKind.LATE_FEE,
               before=before, after=after, note=f"late fee on {len(charged)} installment(s)")
    withdraw_for_loan(session, loan=loan, reason=WithdrawReason.AMOUNT_CHANGED)
    return len(charged)


def apply_late_fees(
    session: Session, *, today: date, kind: LateFeeKind, amount: Decimal, percent: Decimal,
    grace_days: int,
) -> int:
    """Charge the configured fee once on every installment overdue past the grace days."""
    rule = FeeRule(LateFeeKind(kind), amount, percent)
    if not rule.charges:
        return 0
    # Overdue past the grace period: due_date + grace_days < today.
    cutoff = today - timedelta(days=grace_days)
    charged, after_id = 0, 0
    while ids := _eligible_loan_ids(session, cutoff, after_id):
        # Loans are locked in id order (no deadlock between two workers); each is re-read
        # under the lock, so an installment a concurrent run charged is not charged again.
        loans = session.scalars(
            select(Loan)
            .where(Loan.id.in_(ids), Loan.state == LoanState.ACTIVE)
            .order_by(Loan.id)
            .with_for_update(of=Loan)
            .options(selectinload(Loan.installments))
            .execution_options(populate_existing=True)
        ).all()
        for loan in loans:
            charged += _charge_loan(session, loan, cutoff, rule)
        session.flush()
        after_id = ids[-1]
    log.info("late fees charged on %s installments", charged)
    return charged
