"""Frozen views of loans and borrowers: what services hand to adapters (never ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import (
    Contact,
    ContactChannel,
    ContactOutcome,
    Frequency,
    InterestMethod,
    Loan,
    LoanState,
    Promise,
    PromiseState,
    Staff,
)
from db.services import ledger


@dataclass(frozen=True)
class PromiseView:
    id: int
    amount: Decimal
    promised_date: date
    state: PromiseState
    made_by: str | None
    created_at: datetime


@dataclass(frozen=True)
class ContactView:
    id: int
    channel: ContactChannel
    outcome: ContactOutcome
    note: str | None
    staff_name: str | None
    created_at: datetime


@dataclass(frozen=True)
class BorrowerView:
    id: int
    name: str
    phone: str
    address: str | None
    opted_out: bool
    loans_count: int


@dataclass(frozen=True)
class LoanSummary:
    """One line of a list or search result."""

    id: int
    loan_number: str
    version: int
    state: LoanState
    borrower_name: str
    borrower_phone: str
    outstanding: Decimal
    next_due_date: date | None
    days_past_due: int
    agent_id: int | None


@dataclass(frozen=True)
class LoanView:
    """Everything a loan card shows."""

    id: int
    loan_number: str
    version: int
    state: LoanState
    state_reason: str | None
    borrower_id: int
    borrower_name: str
    borrower_phone: str
    borrower_address: str | None
    borrower_opted_out: bool
    agent_id: int | None
    agent_name: str | None
    principal: Decimal
    interest_method: InterestMethod
    interest_rate: Decimal
    installments_count: int
    frequency: Frequency
    first_due_date: date
    amount_payable: Decimal
    fees_charged: Decimal
    amount_paid: Decimal
    outstanding: Decimal
    next_due_date: date | None
    next_due_amount: Decimal
    days_past_due: int
    overdue_amount: Decimal
    installments_paid: int
    open_promise: PromiseView | None
    last_contact: ContactView | None
    created_at: datetime
    updated_at: datetime


def loan_summary(loan: Loan, *, today: date) -> LoanSummary:
    """A list line for loan (reads only the loan and its joined borrower)."""
    return LoanSummary(
        id=loan.id,
        loan_number=loan.loan_number,
        version=loan.version,
        state=loan.state,
        borrower_name=loan.borrower.name,
        borrower_phone=loan.borrower.phone,
        outstanding=loan.outstanding,
        next_due_date=loan.next_due_date,
        days_past_due=ledger.days_past_due(loan, today),
        agent_id=loan.agent_id,
    )


def _open_promise(session: Session, loan_id: int) -> PromiseView | None:
    stmt = (
        select(Promise, Staff.name)
        .outerjoin(Staff, Staff.id == Promise.made_by_id)
        .where(Promise.loan_id == loan_id, Promise.state == PromiseState.OPEN)
        .order_by(Promise.created_at.desc(), Promise.id.desc())
        .limit(1)
    )
    row = session.execute(stmt).first()
    if row is None:
        return None
    p, made_by = row
    return PromiseView(p.id, p.amount, p.promised_date, p.state, made_by, p.created_at)


def _last_contact(session: Session, loan_id: int) -> ContactView | None:
    stmt = (
        select(Contact, Staff.name)
        .outerjoin(Staff, Staff.id == Contact.staff_id)
        .where(Contact.loan_id == loan_id)
        .order_by(Contact.created_at.desc(), Contact.id.desc())
        .limit(1)
    )
    row = session.execute(stmt).first()
    if row is None:
        return None
    c, staff_name = row
    return ContactView(c.id, c.channel, c.outcome, c.note, staff_name, c.created_at)


def loan_view(session: Session, loan: Loan, *, today: date) -> LoanView:
    """The card for loan: one query each for its open promise and last contact."""
    borrower = loan.borrower
    agent = session.get(Staff, loan.agent_id) if loan.agent_id is not None else None
    next_date, next_amount = ledger.next_due(loan)
    return LoanView(
        id=loan.id,
        loan_number=loan.loan_number,
        version=loan.version,
        state=loan.state,
        state_reason=loan.state_reason,
        borrower_id=borrower.id,
        borrower_name=borrower.name,
        borrower_phone=borrower.phone,
        borrower_address=borrower.address,
        borrower_opted_out=borrower.opted_out_at is not None,
        agent_id=loan.agent_id,
        agent_name=agent.name if agent else None,
        principal=loan.principal,
        interest_method=loan.interest_method,
        interest_rate=loan.interest_rate,
        installments_count=loan.installments_count,
        frequency=loan.frequency,
        first_due_date=loan.first_due_date,
        amount_payable=loan.amount_payable,
        fees_charged=loan.fees_charged,
        amount_paid=loan.amount_paid,
        outstanding=loan.outstanding,
        next_due_date=loan.next_due_date,
        next_due_amount=next_amount if next_date is not None else ledger.ZERO,
        days_past_due=ledger.days_past_due(loan, today),
        overdue_amount=ledger.overdue_amount(loan, today),
        installments_paid=sum(1 for i in loan.installments if ledger.is_settled(i)),
        open_promise=_open_promise(session, loan.id),
        last_contact=_last_contact(session, loan.id),
        created_at=loan.created_at,
        updated_at=loan.updated_at,
    )
