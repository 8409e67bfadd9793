"""Audiences: whom a broadcast goes to, and its recipients read in chunks.

Choices:
- An audience is a set of ACTIVE loans (all, overdue, a bucket, an agent's, a tag's
  borrowers); each borrower is ONE recipient, with the placeholder values of their most
  overdue matching loan (earliest next due date).
- Opted-out and suppressed borrowers are recipients too, with the reason, so a broadcast
  can count them like any other fate.
- Rows are read in keyset chunks: 100k recipients never become ORM objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Date, case, exists, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import SQLCoreOperations

from db.models import Borrower, BorrowerTag, Installment, Loan, LoanState, Suppression
from db.services.access import LIVE_LOAN
from db.services.collection.ledger import Bucket, bucket_dates
from db.services.errors import InvalidInput
from db.services.staff.members import get_staff_by_id

CHUNK = 500  # rows read per round trip
MAX_TAG = 40


class AudienceKind(StrEnum):
    ALL_ACTIVE = "all_active"
    OVERDUE = "overdue"
    BUCKET = "bucket"
    AGENT = "agent"
    TAG = "tag"


@dataclass(frozen=True)
class Audience:
    """Whom a broadcast goes to; only the field its kind needs is kept."""

    kind: AudienceKind
    bucket: Bucket | None = None
    agent_id: int | None = None
    tag: str | None = None

    def __post_init__(self) -> None:
        try:
            k = AudienceKind(self.kind)
            bucket = Bucket(self.bucket) if k is AudienceKind.BUCKET and self.bucket else None
        except ValueError:
            raise InvalidInput("That audience is not one I know.", code="audience") from None
        tag = (self.tag or "").strip().casefold() if k is AudienceKind.TAG else None
        if k is AudienceKind.BUCKET and bucket is None:
            raise InvalidInput("Choose a days-past-due bucket.", code="audience_bucket")
        if k is AudienceKind.AGENT and not self.agent_id:
            raise InvalidInput("Choose an agent.", code="audience_agent")
        if k is AudienceKind.TAG and not 0 < len(tag or "") <= MAX_TAG:
            raise InvalidInput(f"A tag has 1 to {MAX_TAG} characters.", code="audience_tag")
        object.__setattr__(self, "kind", k)
        object.__setattr__(self, "bucket", bucket)
        object.__setattr__(self, "agent_id", self.agent_id if k is AudienceKind.AGENT else None)
        object.__setattr__(self, "tag", tag)

    def to_json(self) -> dict[str, Any]:
        data = {"kind": self.kind.value, "bucket": self.bucket, "agent_id": self.agent_id}
        data["tag"] = self.tag
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in data.items() if v}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        try:
            agent = int(data["agent_id"]) if data.get("agent_id") else None
            kind = data["kind"]
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("That audience is not one I know.", code="audience") from None
        return cls(kind, bucket=data.get("bucket"), agent_id=agent, tag=data.get("tag"))

    def describe(self) -> str:
        return {
            AudienceKind.ALL_ACTIVE: "all borrowers with an active loan",
            AudienceKind.OVERDUE: "borrowers with an overdue loan",
            AudienceKind.BUCKET: f"borrowers {self.bucket} days past due",
            AudienceKind.AGENT: f"borrowers of agent #{self.agent_id}",
            AudienceKind.TAG: f"borrowers tagged {self.tag}",
        }[self.kind]


@dataclass(frozen=True)
class Recipient:
    borrower_id: int
    name: str
    phone: str
    timezone: str | None
    loan_id: int
    loan_number: str
    next_due: date | None
    amount_due: Decimal
    outstanding: Decimal
    reason: str | None  # why the borrower is suppressed, None when they may be texted
    error_code: str | None


# --- recipients, in chunks ----------------------------------------------------------------


def _conditions(audience: Audience, today: date) -> list[ColumnElement[bool]]:
    """The audience's loans: always ACTIVE ones."""
    conds = [Loan.state == LoanState.ACTIVE, LIVE_LOAN]
    if audience.kind is AudienceKind.OVERDUE:
        conds.append(Loan.next_due_date < today)
    elif audience.kind is AudienceKind.BUCKET:
        if audience.bucket is None:  # refused when made: never widen it to everyone
            raise InvalidInput("Choose a days-past-due bucket.", code="audience_bucket")
        earliest, latest = bucket_dates(audience.bucket, today)
        conds.append(Loan.next_due_date <= latest)
        if earliest is not None:
            conds.append(Loan.next_due_date >= earliest)
    elif audience.kind is AudienceKind.AGENT:
        conds.append(Loan.agent_id == audience.agent_id)
    elif audience.kind is AudienceKind.TAG:
        tagged = (BorrowerTag.borrower_id == Loan.borrower_id) & (BorrowerTag.tag == audience.tag)
        conds.append(exists().where(tagged))
    return conds


def _row_columns(today: date) -> tuple[SQLCoreOperations[Any], ...]:
    """A loan's placeholder values, its borrower, and why the borrower may not be texted."""
    cutoff = case((Loan.next_due_date > today, Loan.next_due_date), else_=literal(today, Date))
    owed = (
        Installment.principal_due
        + Installment.interest_due
        + Installment.fee_due
        - Installment.amount_paid
        - Installment.fee_paid
    )
    # Cents, so SQLite's floating NUMERIC sums to the exact amount.
    due_cents = (
        select(func.coalesce(func.sum(func.round(owed * 100)), 0))
        .where(Installment.loan_id == Loan.id, Installment.due_date <= cutoff)
        .scalar_subquery()
    )
    return (
        Borrower.id,
        Borrower.name,
        Borrower.phone,
        Borrower.timezone,
        Borrower.opted_out_at,
        Suppression.reason,
        Suppression.error_code,
        Loan.id,
        Loan.loan_number,
        Loan.next_due_date,
        due_cents,
        Loan.amount_payable,
        Loan.fees_charged,
        Loan.amount_paid,
    )


def _reason(opted_out: datetime | None, reason: str | None, code: str | None) -> str | None:
    if opted_out is not None:
        return "opted out"
    if reason is None:
        return None
    return f"suppressed number (carrier {code})" if code else f"suppressed number ({reason})"


def _recipient(row: Any) -> Recipient:
    (
        bid,
        name,
        phone,
        tz,
        opted,
        s_reason,
        s_code,
        lid,
        number,
        due,
        cents,
        payable,
        fees,
        paid,
    ) = row
    return Recipient(
        bid,
        name,
        phone,
        tz,
        lid,
        number,
        due,
        Decimal(int(cents or 0)).scaleb(-2),
        payable + fees - paid,
        _reason(opted, s_reason, s_code),
        s_code,
    )


def audience_recipients(
    session: Session, *, audience: Audience, today: date, chunk_size: int = CHUNK
) -> Iterator[list[Recipient]]:
    """The audience's borrowers, one each (their most overdue loan), in chunks, by id."""
    nulls_last = case((Loan.next_due_date.is_(None), 1), else_=0)
    stmt = (
        select(*_row_columns(today))
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .outerjoin(Suppression, Suppression.phone == Borrower.phone)
        .where(*_conditions(audience, today))
        .order_by(Loan.borrower_id, nulls_last, Loan.next_due_date, Loan.id)
    )
    # One sorted pass, streamed (a server-side cursor on PostgreSQL): the caller may
    # insert between chunks on the same connection.
    last = None
    with session.execute(stmt.execution_options(yield_per=chunk_size)) as result:
        for rows in result.partitions():
            chunk = []
            for row in rows:
                if row[0] != last:  # a borrower's first row is their most overdue loan
                    chunk.append(_recipient(row))
                    last = row[0]
            if chunk:
                yield chunk


def audience_is_empty(session: Session, *, audience: Audience, today: date) -> bool:
    """True when no loan matches the audience."""
    found = select(Loan.id).where(*_conditions(audience, today)).limit(1)
    return session.scalars(found).first() is None


def audience_words(session: Session, audience: Audience) -> str:
    """Who a broadcast goes to, in words; an agent by name rather than by number."""
    if audience.kind is AudienceKind.AGENT and audience.agent_id:
        agent = get_staff_by_id(session, staff_id=audience.agent_id)
        if agent is not None:
            return f"borrowers of {agent.name}"
    return audience.describe()


def audience_words_if_anyone(session: Session, *, audience: Audience, today: date) -> str | None:
    """The audience in words, or None when nobody is in it (a broadcast is not composed)."""
    if audience_is_empty(session, audience=audience, today=today):
        return None
    return audience_words(session, audience)
