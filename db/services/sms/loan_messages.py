"""The SMS about one loan and what became of each: what the API's loan messages show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Message, MessageKind, MessageStatus
from db.services.access import Actor
from db.services.loans.guards import find_loan
from db.services.paging import check_page


@dataclass(frozen=True)
class LoanMessage:
    id: int
    kind: MessageKind
    rule: str | None
    to_phone: str
    body: str
    status: MessageStatus
    error_code: str | None
    segments: int | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None


def loan_messages(
    session: Session, *, actor: Actor, loan_number: str, limit: int = 50
) -> list[LoanMessage]:
    """The loan's messages, newest first, if actor may see the loan (NotFound otherwise)."""
    check_page(limit)
    loan = find_loan(session, actor=actor, loan_number=loan_number)
    stmt = (
        select(Message)
        .where(Message.loan_id == loan.id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return [
        LoanMessage(
            m.id,
            m.kind,
            m.rule,
            m.to_phone,
            m.body,
            m.status,
            m.error_code,
            m.segments,
            m.created_at,
            m.sent_at,
            m.delivered_at,
            m.failed_at,
        )
        for m in session.scalars(stmt)
    ]
