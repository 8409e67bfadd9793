"""Loan guards: every check a service makes before it reads or changes one loan.

Finding the loan an actor may see (row-locked for a change), refusing a loan that is
archived, not active or changed since it was shown, and checking an amount typed by staff
against the limits and against what the loan still owes. Every service that takes a loan
number goes through here, so the refusals read the same everywhere.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, defaultload, selectinload

from db import agency as agencies
from db.agency import Agency
from db.models import Borrower, Loan, LoanState, Payment
from db.money import format_money, q
from db.services.access import Actor, SelectT, check_loan
from db.services.errors import Conflict, InvalidInput, NotFound
from db.validation import above_limit, parse_loan_number

# A list line never shows tags: skip the selectin query Borrower.tags would add per loan.
NO_TAGS = defaultload(Loan.borrower).lazyload(Borrower.tags)


def _for_change(stmt: SelectT) -> SelectT:
    # Every change to a loan locks its row first, so two agents paying at once allocate
    # one after the other; populate_existing drops what the session had cached.
    return (
        stmt.with_for_update(of=Loan)
        .options(selectinload(Loan.installments))
        .execution_options(populate_existing=True)
    )


def find_loan(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    lock: bool = False,
    archived: bool = False,
) -> Loan:
    """The loan with that number if actor may see it (row-locked for changes when lock).

    A loan locked for a change must not be archived, unless archived (restoring it).
    """
    number = parse_loan_number(loan_number)
    stmt = select(Loan).where(Loan.loan_number == number).options(NO_TAGS)
    if lock:
        stmt = _for_change(stmt)
    loan = check_loan(actor, session.scalars(stmt).first(), number)
    if lock and not archived:
        refuse_archived(loan)
    return loan


def find_payment_and_loan(
    session: Session, *, actor: Actor, payment_id: int
) -> tuple[Payment, Loan]:
    """The payment and its loan if actor may see it, the loan row locked first (as a payment
    locks it), refused when archived."""
    loan_id = select(Payment.loan_id).where(Payment.id == payment_id).scalar_subquery()
    loan = session.scalars(_for_change(select(Loan).where(Loan.id == loan_id))).one_or_none()
    if loan is None:
        raise NotFound(f"No payment {payment_id} found.", code="payment_not_found")
    check_loan(actor, loan, loan.loan_number)
    refuse_archived(loan)
    payment = session.scalars(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    ).one()
    return payment, loan


def refuse_archived(loan: Loan) -> None:
    """No change to an archived loan (payments, edits, promises...) until it is restored."""
    if loan.archived_at is not None:
        raise Conflict(
            f"Loan {loan.loan_number} is archived; an admin can restore it with "
            f"/restore {loan.loan_number}.",
            code="loan_archived",
        )


def require_active(loan: Loan) -> None:
    """Refuse a change (money, terms, reminders) on a loan that is closed or written off."""
    if loan.state != LoanState.ACTIVE:
        raise Conflict(
            f"Loan {loan.loan_number} is {loan.state.value.replace('_', ' ')}.",
            code="loan_not_active",
            state=loan.state,
        )


def refuse_stale(loan: Loan, expected_version: int | None) -> None:
    """Refuse a change confirmed on a loan that changed since it was shown (None: no check)."""
    if expected_version is not None and expected_version != loan.version:
        raise Conflict(
            "This loan changed since you opened it; here is the current card.",
            code="stale",
            version=loan.version,
        )


def check_amount(
    amount: Decimal, *, max_amount: Decimal, agency: Agency = agencies.DEFAULT
) -> Decimal:
    """A positive money amount with at most the currency's decimals, at most max_amount."""
    places = agency.minor_units
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise InvalidInput("That is not an amount.", code="amount_format")
    if amount <= 0:
        raise InvalidInput("The amount must be more than zero.", code="amount_not_positive")
    if amount != q(amount, places):
        raise InvalidInput(
            f"Use at most {places} decimal places.", code="amount_decimals", places=places
        )
    if amount > max_amount:
        raise above_limit(max_amount, agency)
    return q(amount, places)


def refuse_above_owed(
    loan: Loan, amount: Decimal, *, code: str, agency: Agency = agencies.DEFAULT
) -> None:
    """Refuse an amount above what the loan still owes, saying how much that is."""
    owed = loan.outstanding
    if amount > owed:
        raise InvalidInput(
            f"That is more than the {format_money(owed, agency)} owed on {loan.loan_number}.",
            code=code,
            owed=owed,
        )


def check_owed(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    amount: Decimal,
    code: str,
    agency: Agency = agencies.DEFAULT,
) -> Decimal:
    """What would be left owing after amount, refused as a payment or promise would be.

    Writes nothing: the conversations ask it before they show a summary to confirm.
    """
    loan = find_loan(session, actor=actor, loan_number=loan_number)
    require_active(loan)
    refuse_above_owed(loan, amount, code=code, agency=agency)
    return loan.outstanding - amount
