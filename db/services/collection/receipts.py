"""Receipts that protect everybody (issue 11): a borrower's NO to a payment notice.

Every payment gets a receipt number, sent to the borrower with "If you did not pay this,
reply NO" (sms/notices.py). A NO (or NOT PAID) from the borrower's number, within DENY_DAYS
of a payment whose notice was sent to that number, marks the latest such payment disputed
(a loan_hold of kind PAYMENT; collection goes on) and the SMS waits for the relay job, which
sends it with the payment's details to the managers (sms/relays.py), not to the agent who
recorded the payment. A manager resolves it: confirmed paid, or not paid, which reverses the
payment (loans/holds.py). A NO with no such payment is an ordinary reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from db.models import (
    Borrower,
    HoldKind,
    Loan,
    LoanHold,
    Message,
    MessageKind,
    Payment,
    Staff,
)
from db.services.access import LIVE_LOAN
from db.services.audit.write import AuditAction, audit

log = logging.getLogger(__name__)

DENY_DAYS = 7


@dataclass(frozen=True)
class Denial:
    hold_id: int
    loan_id: int
    payment_id: int
    receipt: str
    new: bool  # False: this payment was denied already and is not resolved yet


@dataclass(frozen=True)
class DeniedPayment:
    """What a manager needs to judge a denied payment."""

    receipt: str
    amount: Decimal
    paid_at: datetime
    recorded_by: str | None
    agent: str | None


def _latest_noticed_payment(
    session: Session, borrower_id: int, phone: str, now: datetime
) -> Payment | None:
    """The newest payment of the borrower whose notice was sent to phone in the window."""
    since = now - timedelta(days=DENY_DAYS)
    noticed = (
        select(Message.id)
        .where(
            Message.loan_id == Payment.loan_id,
            Message.kind == MessageKind.NOTICE,
            Message.to_phone == phone,
            Message.sent_at.is_not(None),
            Message.created_at >= Payment.created_at,
        )
        .exists()
    )
    stmt = (
        select(Payment)
        .join(Loan, Loan.id == Payment.loan_id)
        .where(
            Loan.borrower_id == borrower_id,
            LIVE_LOAN,
            Payment.amount > 0,
            Payment.reversed_at.is_(None),
            Payment.receipt_number.is_not(None),
            Payment.paid_at >= since,
            noticed,
        )
        .order_by(Payment.paid_at.desc(), Payment.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def deny_latest_payment(
    session: Session, *, borrower: Borrower, phone: str, text: str, now: datetime
) -> Denial | None:
    """The borrower says they did not make their latest receipted payment: dispute it."""
    payment = _latest_noticed_payment(session, borrower.id, phone, now)
    if payment is None:
        return None
    receipt = payment.receipt_number or ""
    open_hold = session.scalars(
        select(LoanHold).where(
            LoanHold.payment_id == payment.id,
            LoanHold.kind == HoldKind.PAYMENT,
            LoanHold.resolved_at.is_(None),
        )
    ).first()
    if open_hold is not None:
        return Denial(open_hold.id, payment.loan_id, payment.id, receipt, new=False)
    hold = LoanHold(
        loan_id=payment.loan_id,
        kind=HoldKind.PAYMENT,
        payment_id=payment.id,
        note=f"{receipt}: {text}"[:500],
        opened_at=now,
    )
    session.add(hold)
    session.flush()
    audit(
        session,
        actor=None,
        action=AuditAction.PAYMENT_DENIED,
        target_type="payment",
        target_id=payment.id,
        details={"receipt": receipt, "amount": payment.amount, "hold_id": hold.id, "via": "sms"},
    )
    log.warning("payment %s (%s) denied by its borrower", payment.id, receipt)
    return Denial(hold.id, payment.loan_id, payment.id, receipt, new=True)


def denied_payment(session: Session, *, loan_id: int) -> DeniedPayment | None:
    """The loan's newest unresolved denied payment, with who recorded it and the agent."""
    recorder, agent = aliased(Staff), aliased(Staff)
    row = session.execute(
        select(Payment, recorder.name, agent.name)
        .join(LoanHold, LoanHold.payment_id == Payment.id)
        .join(Loan, Loan.id == Payment.loan_id)
        .outerjoin(recorder, recorder.id == Payment.recorded_by_id)
        .outerjoin(agent, agent.id == Loan.agent_id)
        .where(
            LoanHold.loan_id == loan_id,
            LoanHold.kind == HoldKind.PAYMENT,
            LoanHold.resolved_at.is_(None),
        )
        .order_by(LoanHold.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    payment, recorded_by, agent_name = row
    return DeniedPayment(
        payment.receipt_number or "", payment.amount, payment.paid_at, recorded_by, agent_name
    )
