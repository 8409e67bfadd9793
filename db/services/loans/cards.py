"""A loan's card: by number or by id (from a button), and with one page of its history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from db.agency import Agency
from db.models import Loan
from db.services.access import Actor, check_loan
from db.services.loans.guards import NO_TAGS
from db.services.loans.history import HistoryPage, loan_history
from db.services.loans.snapshots import LoanView, card_select, loan_view
from db.validation import parse_loan_number


def _card(
    session: Session, actor: Actor, found: ColumnElement[bool], today: date, number: str = ""
) -> LoanView:
    """The card of the loan found if actor may see it: loan and extras, then installments."""
    # The installments load lazily: a plain lazy load costs less than selectinload here.
    stmt = card_select(Loan).where(found).options(NO_TAGS)
    row = session.execute(stmt).first()
    loan = check_loan(actor, row[0] if row else None, number)  # NotFound when no row
    return loan_view(session, loan, today=today, extras=row[1:] if row else None)


def get_loan(session: Session, *, actor: Actor, loan_number: str, today: date) -> LoanView:
    """The card of a loan actor may see; NotFound otherwise."""
    number = parse_loan_number(loan_number)
    return _card(session, actor, Loan.loan_number == number, today, number)


def get_loan_by_id(session: Session, *, actor: Actor, loan_id: int, today: date) -> LoanView:
    """The card of a loan by its id (from a button), if actor may see it."""
    return _card(session, actor, Loan.id == loan_id, today)


@dataclass(frozen=True)
class LoanWithHistory:
    loan: LoanView
    history: HistoryPage


def loan_with_history(
    session: Session,
    *,
    actor: Actor,
    today: date,
    agency: Agency,
    limit: int,
    loan_id: int | None = None,
    loan_number: str | None = None,
    before: str | None = None,
) -> LoanWithHistory:
    """The card (by id, else by number; access-checked) and one page of its history."""
    if loan_id is not None:
        view = get_loan_by_id(session, actor=actor, loan_id=loan_id, today=today)
    else:
        view = get_loan(session, actor=actor, loan_number=loan_number or "", today=today)
    page = loan_history(
        session,
        actor=actor,
        loan_number=view.loan_number,
        limit=limit,
        before=before,
        agency=agency,
    )
    return LoanWithHistory(view, page)
