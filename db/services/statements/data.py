"""What a statement says, gathered in one transaction, and the audited call staff make."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.agency import Agency
from db.models import Installment, Loan, Payment
from db.services.access import Actor
from db.services.audit.write import AuditAction, audit
from db.services.collection import ledger
from db.services.loans.guards import find_loan


@dataclass(frozen=True)
class ScheduleLine:
    seq: int
    due_date: date
    amount: Decimal  # principal and interest due
    fee: Decimal
    paid: Decimal  # towards amount and fee
    settled: bool


@dataclass(frozen=True)
class Movement:
    """One line of the account: what was charged or paid that day, and the balance after."""

    day: date
    what: str
    charged: Decimal
    paid: Decimal
    balance: Decimal


@dataclass(frozen=True)
class Statement:
    loan_id: int
    loan_number: str
    borrower: str
    phone: str
    address: str | None
    state: str
    principal: Decimal
    terms: str
    first_due_date: date
    schedule: tuple[ScheduleLine, ...]
    movements: tuple[Movement, ...]
    payable: Decimal
    fees: Decimal
    paid: Decimal
    balance: Decimal
    generated_on: date


def _day(moment: datetime, agency: Agency) -> date:
    return moment.astimezone(agency.zone).date()


def _terms(loan: Loan) -> str:
    rate = f"{loan.interest_rate.normalize():f}% a year, {loan.interest_method.value}"
    interest = "no interest" if loan.interest_rate == 0 else rate
    return f"{loan.installments_count} {loan.frequency.value} installment(s), {interest}"


def _schedule(loan: Loan) -> tuple[ScheduleLine, ...]:
    return tuple(
        ScheduleLine(
            seq=i.seq,
            due_date=i.due_date,
            amount=i.principal_due + i.interest_due,
            fee=i.fee_due,
            paid=i.amount_paid + i.fee_paid,
            settled=ledger.is_settled(i),
        )
        for i in loan.installments
    )


def _movements(session: Session, loan: Loan, agency: Agency) -> tuple[Movement, ...]:
    """The amount payable, each late fee and each payment (reversals too), by date."""
    events: list[tuple[date, int, str, Decimal, Decimal]] = [
        (_day(loan.created_at, agency), 0, "Loan: amount payable", loan.amount_payable, Decimal(0))
    ]
    fees = session.scalars(
        select(Installment).where(Installment.loan_id == loan.id, Installment.fee_due > 0)
    )
    for inst in fees:
        when = inst.fee_applied_at or loan.created_at
        fee = f"Late fee, installment {inst.seq}"
        events.append((_day(when, agency), 1, fee, inst.fee_due, Decimal(0)))
    pays = session.scalars(select(Payment).where(Payment.loan_id == loan.id).order_by(Payment.id))
    for pay in pays:
        what = f"Payment #{pay.id} ({pay.method.value})"
        if pay.reverses_id is not None:
            what = f"Reversal of payment #{pay.reverses_id}"
        events.append((_day(pay.paid_at, agency), 2, what, Decimal(0), pay.amount))
    balance, out = Decimal(0), []
    for day, _, what, charged, paid in sorted(events, key=lambda e: (e[0], e[1])):
        balance += charged - paid
        out.append(Movement(day, what, Decimal(charged), paid, balance))
    return tuple(out)


def gather(session: Session, *, loan: Loan, agency: Agency, today: date) -> Statement:
    """The statement of a loan already allowed to the caller (staff scope or a signed link)."""
    b = loan.borrower
    return Statement(
        loan_id=loan.id,
        loan_number=loan.loan_number,
        borrower=b.name,
        phone=b.phone,
        address=b.address,
        state=loan.state.value.replace("_", " "),
        principal=loan.principal,
        terms=_terms(loan),
        first_due_date=loan.first_due_date,
        schedule=_schedule(loan),
        movements=_movements(session, loan, agency),
        payable=loan.amount_payable,
        fees=loan.fees_charged,
        paid=loan.amount_paid,
        balance=loan.outstanding,
        generated_on=today,
    )


def statement_for_staff(
    session: Session, *, actor: Actor, loan_number: str, agency: Agency, today: date
) -> Statement:
    """The statement of a loan actor may see (an agent: their own); audited."""
    loan = find_loan(session, actor=actor, loan_number=loan_number)
    made = gather(session, loan=loan, agency=agency, today=today)
    audit(
        session,
        actor=actor,
        action=AuditAction.STATEMENT_MADE,
        target_type="loan",
        target_id=loan.loan_number,
        details={"via": "bot"},
    )
    return made


def statement_by_id(
    session: Session, *, loan_id: int, agency: Agency, today: date
) -> Statement | None:
    """The statement behind a borrower's signed link (checked by the caller), or None."""
    loan = session.get(Loan, loan_id)
    if loan is None or loan.archived_at is not None:
        return None
    return gather(session, loan=loan, agency=agency, today=today)
