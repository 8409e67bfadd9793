"""Frozen views of loans and borrowers: what services hand to adapters (never ORM objects)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from db.models import (
    Base,
    Contact,
    ContactChannel,
    ContactOutcome,
    Frequency,
    HoldKind,
    InterestMethod,
    Loan,
    LoanHold,
    LoanState,
    Promise,
    PromiseState,
    Staff,
)
from db.services.collection import ledger


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
    # Set when the loan is archived (only admins ever see such a card).
    archived_at: datetime | None = None
    archive_reason: str | None = None
    # The newest open dispute, hardship pause or denied payment (issue 11), if any.
    hold: HoldSummary | None = None


@dataclass(frozen=True)
class HoldSummary:
    kind: HoldKind
    note: str
    opened_at: datetime
    until: date | None
    payment_id: int | None


def _hold_view(hold: LoanHold | None, today: date) -> HoldSummary | None:
    """The card's hold line: a hardship pause whose day has come is over by itself."""
    if hold is None or (hold.until is not None and hold.until <= today):
        return None
    return HoldSummary(HoldKind(hold.kind), hold.note, hold.opened_at, hold.until, hold.payment_id)


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


def _is_newest(
    row: type[Promise] | type[Contact],
    later: type[Promise] | type[Contact],
    *conds: ColumnElement[bool],
) -> ColumnElement[bool]:
    """No row of the same loan meeting conds comes after row in (created_at, id) order."""
    after = or_(
        later.created_at > row.created_at,
        and_(later.created_at == row.created_at, later.id > row.id),
    )
    return ~exists().where(later.loan_id == row.loan_id, after, *conds)


@cache
def card_select(*entities: type[Base]) -> Select[Any]:
    """entities, then the card's agent name, open promise, its maker, last contact, its writer.

    Outer joins on the newest matching row (at most one each), so a card is one round trip.
    Built once: making the aliases costs more than running the statement.
    """
    agent, maker, writer = aliased(Staff), aliased(Staff), aliased(Staff)
    newer_promise, newer_contact = aliased(Promise), aliased(Contact)
    newer_hold = aliased(LoanHold)
    open_hold = and_(
        LoanHold.loan_id == Loan.id,
        LoanHold.resolved_at.is_(None),
        ~exists().where(
            newer_hold.loan_id == Loan.id,
            newer_hold.resolved_at.is_(None),
            newer_hold.id > LoanHold.id,
        ),
    )
    open_promise = and_(
        Promise.loan_id == Loan.id,
        Promise.state == PromiseState.OPEN,
        _is_newest(Promise, newer_promise, newer_promise.state == PromiseState.OPEN),
    )
    return (
        select(*entities, agent.name, Promise, maker.name, Contact, writer.name, LoanHold)
        .select_from(Loan)
        .outerjoin(agent, agent.id == Loan.agent_id)
        .outerjoin(Promise, open_promise)
        .outerjoin(maker, maker.id == Promise.made_by_id)
        .outerjoin(Contact, and_(Contact.loan_id == Loan.id, _is_newest(Contact, newer_contact)))
        .outerjoin(writer, writer.id == Contact.staff_id)
        .outerjoin(LoanHold, open_hold)
    )


def _promise_view(p: Promise | None, made_by: str | None) -> PromiseView | None:
    if p is None:
        return None
    return PromiseView(p.id, p.amount, p.promised_date, p.state, made_by, p.created_at)


def _contact_view(c: Contact | None, staff_name: str | None) -> ContactView | None:
    if c is None:
        return None
    return ContactView(c.id, c.channel, c.outcome, c.note, staff_name, c.created_at)


def loan_view(
    session: Session, loan: Loan, *, today: date, extras: Sequence[Any] | None = None
) -> LoanView:
    """The card for loan; extras are card_select()'s columns after the entities, if fetched."""
    if extras is None:
        extras = session.execute(card_select().where(Loan.id == loan.id)).one()
    agent_name, promise, made_by, contact, written_by, hold = extras
    borrower = loan.borrower
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
        agent_name=agent_name,
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
        open_promise=_promise_view(promise, made_by),
        last_contact=_contact_view(contact, written_by),
        created_at=loan.created_at,
        updated_at=loan.updated_at,
        archived_at=loan.archived_at,
        archive_reason=loan.archive_reason,
        hold=_hold_view(hold, today),
    )
