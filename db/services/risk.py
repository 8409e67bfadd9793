"""A transparent risk score per loan (issue 11): five parts anyone can check, no learning.

score = the sum of five parts, 0..100, higher = more urgent:
- days past due: 40 x min(days, 90) / 90
- installments not paid on time: 20 x the share of the installments due before today that
  were not settled by their due day
- broken promises: 20 x broken / (kept + broken)
- contacts that went nowhere: 10 x the share of contacts with no answer, refused or a
  wrong number
- amount at stake: 10 x min(outstanding, STAKE_FULL) / STAKE_FULL

Each part is a SQL expression over the loan, so lists (/today) order by the score in the
same statement that reads them; the card shows the parts (risk_of). A borrower whose earlier
(closed) loans were repaid at least ELIGIBLE_SHARE on time is eligible for a new loan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    SQLColumnExpression,
    and_,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session

from db.models import (
    Contact,
    ContactOutcome,
    Installment,
    Loan,
    LoanState,
    Promise,
    PromiseState,
)
from db.services.access import Actor, check_loan

STAKE_FULL = Decimal("100000")
ELIGIBLE_SHARE = 0.8
_BAD_CONTACTS = (ContactOutcome.NO_ANSWER, ContactOutcome.REFUSED, ContactOutcome.WRONG_NUMBER)
WEIGHTS = {"overdue": 40, "late": 20, "promises": 20, "contacts": 10, "stake": 10}


def _days_between(
    dialect: str, later: date, earlier: SQLColumnExpression[Any]
) -> ColumnElement[Any]:
    if dialect == "sqlite":
        days: ColumnElement[Any] = func.julianday(literal(later.isoformat())) - func.julianday(
            earlier
        )
        return days
    return literal(later, Date) - earlier


def _day_of(dialect: str, moment: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    return func.date(moment) if dialect == "sqlite" else cast(moment, Date)


def _share(part: ColumnElement[Any], whole: ColumnElement[Any]) -> ColumnElement[Any]:
    """part / whole as a float, 0 when whole is 0."""
    return case((whole > 0, cast(part, Float) / cast(whole, Float)), else_=0.0)


def _count(entity: type, *where: ColumnElement[bool]) -> ColumnElement[int]:
    return select(func.count()).select_from(entity).where(*where).scalar_subquery()


def parts(dialect: str, today: date) -> dict[str, ColumnElement[Any]]:
    """Each part of the score as a SQL expression over Loan (points, see the docstring)."""
    dpd = case(
        (Loan.next_due_date < today, _days_between(dialect, today, Loan.next_due_date)),
        else_=0,
    )
    due = _count(Installment, Installment.loan_id == Loan.id, Installment.due_date < today)
    late = _count(
        Installment,
        Installment.loan_id == Loan.id,
        Installment.due_date < today,
        ~and_(
            Installment.paid_at.is_not(None),
            _day_of(dialect, Installment.paid_at) <= Installment.due_date,
        ),
    )
    kept = _count(Promise, Promise.loan_id == Loan.id, Promise.state == PromiseState.KEPT)
    broken = _count(Promise, Promise.loan_id == Loan.id, Promise.state == PromiseState.BROKEN)
    contacts = _count(Contact, Contact.loan_id == Loan.id)
    bad = _count(Contact, Contact.loan_id == Loan.id, Contact.outcome.in_(_BAD_CONTACTS))
    outstanding = Loan.amount_payable + Loan.fees_charged - Loan.amount_paid
    stake = case(
        (outstanding > STAKE_FULL, 1.0), else_=cast(outstanding, Float) / float(STAKE_FULL)
    )
    return {
        "overdue": WEIGHTS["overdue"] * cast(case((dpd > 90, 90), else_=dpd), Float) / 90.0,
        "late": WEIGHTS["late"] * _share(late, due),
        "promises": WEIGHTS["promises"] * _share(broken, kept + broken),
        "contacts": WEIGHTS["contacts"] * _share(bad, contacts),
        "stake": WEIGHTS["stake"] * stake,
    }


def score(dialect: str, today: date) -> ColumnElement[Any]:
    """The score as one SQL expression over Loan (for ORDER BY)."""
    return sum(parts(dialect, today).values(), literal(0.0))


@dataclass(frozen=True)
class Risk:
    score: int
    parts: dict[str, int]  # part name -> points, as the card explains them
    eligible: bool  # the borrower repaid earlier loans on time (ELIGIBLE_SHARE)


def _eligible(session: Session, dialect: str, loan: Loan) -> bool:
    """At least ELIGIBLE_SHARE of the installments of the borrower's closed loans on time."""
    closed = select(Loan.id).where(
        Loan.borrower_id == loan.borrower_id, Loan.state == LoanState.CLOSED, Loan.id != loan.id
    )
    settled = and_(
        Installment.paid_at.is_not(None),
        _day_of(dialect, Installment.paid_at) <= Installment.due_date,
    )
    on_time, total = session.execute(
        select(func.count().filter(settled), func.count()).where(Installment.loan_id.in_(closed))
    ).one()
    return bool(total > 0 and on_time / total >= ELIGIBLE_SHARE)


def risk_of(session: Session, *, loan: Loan, today: date) -> Risk:
    """The loan's score and its parts (one statement), and the borrower's eligibility."""
    dialect = session.get_bind().dialect.name
    named = parts(dialect, today)
    row = session.execute(
        select(*(expr.label(name) for name, expr in named.items())).where(Loan.id == loan.id)
    ).one()
    points = {name: round(float(getattr(row, name) or 0)) for name in named}
    total = round(sum(float(getattr(row, name) or 0) for name in named))
    return Risk(total, points, _eligible(session, dialect, loan))


def loan_risk(session: Session, *, actor: Actor, loan_id: int, today: date) -> Risk | None:
    """The card's risk line for a loan actor may see; None for a loan that is not active."""
    loan = check_loan(actor, session.get(Loan, loan_id))
    if loan.state is not LoanState.ACTIVE:
        return None
    return risk_of(session, loan=loan, today=today)
