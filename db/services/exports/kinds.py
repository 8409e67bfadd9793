"""What each export holds: its columns and its query, scoped by access and read in chunks.

Every query runs with yield_per (a server-side cursor on PostgreSQL), so a million rows
never sit in memory at once; the rows come out in a stable order (the primary key).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased, lazyload

from db import clock
from db.agency import Agency
from db.models import Borrower, Loan, LoanState, Message, Payment, Staff
from db.services.access import LIVE_LOAN, Actor, scope_live_loans, scope_loans
from db.services.errors import InvalidInput

CHUNK = 1000  # rows fetched per round trip
MAX_DAYS = 366  # the longest period a payments or deliveries export covers


class ExportKind(StrEnum):
    LOANS = "loans"
    OVERDUE = "overdue"
    PAYMENTS = "payments"
    DELIVERIES = "deliveries"

    @property
    def has_period(self) -> bool:
        return self in (ExportKind.PAYMENTS, ExportKind.DELIVERIES)


class ExportFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


@dataclass(frozen=True)
class Period:
    """Days first..last inclusive, in the agency's time zone."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise InvalidInput("The period ends before it starts.", code="period_order")
        if (self.last - self.first).days >= MAX_DAYS:
            raise InvalidInput(f"A period covers at most {MAX_DAYS} days.", code="period_long")

    @classmethod
    def month_of(cls, day: date) -> Period:
        end = calendar.monthrange(day.year, day.month)[1]
        return cls(day.replace(day=1), day.replace(day=end))

    @classmethod
    def last_month(cls, today: date) -> Period:
        return cls.month_of(today.replace(day=1) - timedelta(days=1))

    def __str__(self) -> str:
        return f"{self.first.isoformat()}_{self.last.isoformat()}"


Row = tuple[object, ...]  # one exported row, as the file gets it
DbRow = tuple[Any, ...]  # one row of an export's query (the entities and columns it selects)
Query = Callable[[Actor, Agency, date, "Period | None"], Select[Any]]
Shape = Callable[[DbRow, Agency, date], Row]

_Agent = aliased(Staff)
# The borrower's columns are selected beside the loan: no second join for Loan.borrower.
_NO_BORROWER = lazyload(Loan.borrower)


def _loans(actor: Actor, agency: Agency, today: date, period: Period | None) -> Select[Any]:
    stmt = (
        select(Loan, Borrower.name, Borrower.phone, _Agent.name)
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .outerjoin(_Agent, _Agent.id == Loan.agent_id)
        .options(_NO_BORROWER)
        .order_by(Loan.id)
    )
    return scope_live_loans(stmt, actor)


def _loan_row(row: DbRow, agency: Agency, today: date) -> Row:
    loan, borrower, phone, agent = row
    return (
        loan.loan_number,
        borrower,
        phone,
        agent,
        loan.state,
        loan.principal,
        loan.interest_method,
        loan.interest_rate,
        loan.installments_count,
        loan.frequency,
        loan.first_due_date,
        loan.next_due_date,
        loan.amount_payable,
        loan.fees_charged,
        loan.amount_paid,
        loan.outstanding,
        agency.currency,
        loan.created_at.astimezone(agency.zone).date(),
    )


def _overdue(actor: Actor, agency: Agency, today: date, period: Period | None) -> Select[Any]:
    stmt = (
        select(Loan, Borrower.name, Borrower.phone, Borrower.address, _Agent.name)
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .outerjoin(_Agent, _Agent.id == Loan.agent_id)
        .where(Loan.state == LoanState.ACTIVE, Loan.next_due_date < today)
        .options(_NO_BORROWER)
        .order_by(Loan.id)
    )
    return scope_live_loans(stmt, actor)


def _overdue_row(row: DbRow, agency: Agency, today: date) -> Row:
    loan, borrower, phone, address, agent = row
    return (
        loan.loan_number,
        borrower,
        phone,
        address,
        agent,
        loan.next_due_date,
        (today - loan.next_due_date).days,
        loan.outstanding,
        agency.currency,
    )


def _in_period(
    column: InstrumentedAttribute[datetime], agency: Agency, period: Period | None
) -> list[ColumnElement[bool]]:
    if period is None:
        raise InvalidInput("Say which period to export.", code="period_missing")
    start = clock.day_start(period.first, agency.zone)
    end = clock.day_start(period.last + timedelta(days=1), agency.zone)
    return [column >= start, column < end]


def _loan_scope(stmt: Select[Any], actor: Actor) -> Select[Any]:
    """Rows about loans actor sees; archived loans' rows only for those who read archives."""
    stmt = scope_loans(stmt, actor)
    return stmt if actor.sees_archived else stmt.where(LIVE_LOAN)


def _payments(actor: Actor, agency: Agency, today: date, period: Period | None) -> Select[Any]:
    stmt = (
        select(Payment, Loan.loan_number, Borrower.name, _Agent.name)
        .join(Loan, Loan.id == Payment.loan_id)
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .outerjoin(_Agent, _Agent.id == Payment.recorded_by_id)
        .where(*_in_period(Payment.paid_at, agency, period))
        .order_by(Payment.id)
    )
    return _loan_scope(stmt, actor)


def _payment_row(row: DbRow, agency: Agency, today: date) -> Row:
    pay, number, borrower, recorded_by = row
    return (
        pay.id,
        pay.paid_at.astimezone(agency.zone).date(),
        number,
        borrower,
        pay.amount,
        agency.currency,
        pay.method,
        recorded_by,
        pay.reverses_id,
        pay.note,
    )


def _deliveries(actor: Actor, agency: Agency, today: date, period: Period | None) -> Select[Any]:
    stmt = (
        select(Message, Loan.loan_number)
        .outerjoin(Loan, Loan.id == Message.loan_id)
        .where(*_in_period(Message.created_at, agency, period))
        .order_by(Message.id)
    )
    if actor.sees_archived:
        return stmt  # admins and finance read every message, broadcasts included
    return stmt.where(Loan.archived_at.is_(None) | Loan.id.is_(None))


def _delivery_row(row: DbRow, agency: Agency, today: date) -> Row:
    msg, number = row
    return (
        msg.id,
        msg.created_at.astimezone(agency.zone).isoformat(timespec="seconds"),
        msg.kind,
        msg.to_phone,
        number,
        msg.status,
        msg.error_code,
        msg.segments,
        msg.attempts,
        msg.delivered_at.astimezone(agency.zone).isoformat(timespec="seconds")
        if msg.delivered_at
        else None,
    )


@dataclass(frozen=True)
class Spec:
    header: tuple[str, ...]
    query: Query
    shape: Shape


SPECS: dict[ExportKind, Spec] = {
    ExportKind.LOANS: Spec(
        (
            "loan_number",
            "borrower",
            "phone",
            "agent",
            "state",
            "principal",
            "interest_method",
            "interest_rate",
            "installments",
            "frequency",
            "first_due_date",
            "next_due_date",
            "amount_payable",
            "fees_charged",
            "amount_paid",
            "outstanding",
            "currency",
            "created_on",
        ),
        _loans,
        _loan_row,
    ),
    ExportKind.OVERDUE: Spec(
        (
            "loan_number",
            "borrower",
            "phone",
            "address",
            "agent",
            "due_since",
            "days_overdue",
            "outstanding",
            "currency",
        ),
        _overdue,
        _overdue_row,
    ),
    ExportKind.PAYMENTS: Spec(
        (
            "payment_id",
            "paid_on",
            "loan_number",
            "borrower",
            "amount",
            "currency",
            "method",
            "recorded_by",
            "reverses_payment",
            "note",
        ),
        _payments,
        _payment_row,
    ),
    ExportKind.DELIVERIES: Spec(
        (
            "message_id",
            "created_at",
            "kind",
            "to_phone",
            "loan_number",
            "status",
            "error_code",
            "segments",
            "attempts",
            "delivered_at",
        ),
        _deliveries,
        _delivery_row,
    ),
}


def export_rows(
    session: Session,
    *,
    actor: Actor,
    kind: ExportKind,
    agency: Agency,
    today: date,
    period: Period | None = None,
) -> Iterator[Row]:
    """The rows of one export, as the query yields them in chunks of CHUNK."""
    spec = SPECS[kind]
    stmt = spec.query(actor, agency, today, period).execution_options(yield_per=CHUNK)
    for row in session.execute(stmt):
        yield spec.shape(tuple(row), agency, today)
