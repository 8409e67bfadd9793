"""Small factories that insert rows directly, for tests that need data to act on."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from db import clock
from db.models import (
    Borrower,
    Frequency,
    Installment,
    InterestMethod,
    Loan,
    LoanState,
    Role,
    Staff,
    StaffState,
)
from db.money import build_schedule
from db.services.access import Actor
from db.validation import name_key

_seq = itertools.count(1)

# 10:30 in Kolkata (the agency's zone): inside the allowed SMS hours.
SMS_NOW = datetime(2030, 1, 15, 5, 0, tzinfo=UTC)


def make_staff(
    session: Session,
    *,
    role: Role = Role.AGENT,
    state: StaffState = StaffState.ACTIVE,
    name: str | None = None,
    telegram_user_id: int | None = None,
) -> Staff:
    n = next(_seq)
    staff = Staff(
        telegram_user_id=telegram_user_id or 10_000_000 + n,
        name=name or f"{role.value.title()} {n}",
        role=role,
        state=state,
        failed_logins=0,
    )
    session.add(staff)
    session.flush()
    return staff


def actor(staff: Staff) -> Actor:
    return Actor(staff_id=staff.id, role=staff.role, name=staff.name)


def make_borrower(
    session: Session, *, name: str | None = None, phone: str | None = None, **extra
) -> Borrower:
    n = next(_seq)
    name = name or f"Borrower {n}"
    borrower = Borrower(
        name=name,
        name_key=name_key(name),
        phone=phone or f"+9198{n:08d}",
        **extra,
    )
    session.add(borrower)
    session.flush()
    return borrower


def make_loan(
    session: Session,
    *,
    agent: Staff | None,
    borrower: Borrower | None = None,
    principal: Decimal = Decimal("10000.00"),
    count: int = 1,
    frequency: Frequency = Frequency.MONTHLY,
    first_due: date | None = None,
    method: InterestMethod = InterestMethod.NONE,
    rate: Decimal = Decimal("0"),
    loan_number: str | None = None,
) -> Loan:
    """A loan with its schedule, inserted directly (no events): test setup, not a service."""
    borrower = borrower or make_borrower(session)
    first_due = first_due or clock.utcnow().date() + timedelta(days=10)
    schedule = build_schedule(
        principal=principal,
        count=count,
        frequency=frequency,
        first_due=first_due,
        method=method,
        annual_rate=rate,
    )
    loan = Loan(
        loan_number=loan_number or f"T-{next(_seq):06d}",
        borrower_id=borrower.id,
        agent_id=agent.id if agent else None,
        principal=principal,
        interest_method=method,
        interest_rate=rate,
        installments_count=count,
        frequency=frequency,
        first_due_date=first_due,
        amount_payable=sum((s.amount for s in schedule), Decimal("0")),
        fees_charged=Decimal("0"),
        amount_paid=Decimal("0"),
        next_due_date=schedule[0].due_date,
        state=LoanState.ACTIVE,
        version=1,
    )
    loan.installments = [
        Installment(
            seq=s.seq,
            due_date=s.due_date,
            principal_due=s.principal,
            interest_due=s.interest,
            fee_due=Decimal("0"),
            amount_paid=Decimal("0"),
            fee_paid=Decimal("0"),
        )
        for s in schedule
    ]
    session.add(loan)
    session.flush()
    return loan
