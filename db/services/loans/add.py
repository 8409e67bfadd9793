"""Adding a loan, and finding the borrower it is for.

A loan's card (loans/cards.py), changing loans (loans/changes.py), archiving them
(loans/archive.py), searching and listing them (loans/search.py) and their history
(loans/history.py) are re-exported: the bot imports everything loan-related from here.
"""

from __future__ import annotations

import logging
import secrets
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import agency as agencies
from db.agency import Agency
from db.models import (
    Borrower,
    Frequency,
    Installment,
    InterestMethod,
    Loan,
    LoanEventKind,
    LoanState,
    Role,
)
from db.money import ScheduledInstallment
from db.services.access import Actor, check_borrower
from db.services.audit.write import AuditAction, audit, loan_event
from db.services.collection import ledger
from db.services.errors import AccessDenied, Conflict
from db.services.loans.archive import ArchiveResult, archive_loan, restore_loan
from db.services.loans.cards import LoanWithHistory, get_loan, get_loan_by_id, loan_with_history
from db.services.loans.changes import (
    EditableField,
    EditResult,
    close_loan,
    edit_loan,
    reassign_loan,
    write_off_loan,
)
from db.services.loans.history import HistoryItem, HistoryPage, loan_history
from db.services.loans.search import LoanFilter, LoanPage, list_loans, search_loans
from db.services.loans.snapshots import BorrowerView, LoanView, loan_view
from db.services.loans.terms import DEFAULT_MAX_AMOUNT, active_holder, check_terms, checked_schedule
from db.services.loans.terms import MAX_DAYS_AHEAD as MAX_DAYS_AHEAD
from db.services.loans.terms import MAX_INSTALLMENTS as MAX_INSTALLMENTS
from db.validation import clean_name, clean_text, name_key, parse_loan_number, parse_phone

__all__ = [
    "ArchiveResult",
    "EditResult",
    "EditableField",
    "HistoryItem",
    "HistoryPage",
    "LoanFilter",
    "LoanPage",
    "LoanWithHistory",
    "add_loan",
    "archive_loan",
    "close_loan",
    "edit_loan",
    "find_borrower",
    "get_loan",
    "get_loan_by_id",
    "list_loans",
    "loan_history",
    "loan_with_history",
    "reassign_loan",
    "restore_loan",
    "search_loans",
    "write_off_loan",
]

log = logging.getLogger(__name__)

_NUMBER_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_NUMBER_TRIES = 8


def _borrower_for(
    session: Session, actor: Actor, *, phone: str, name: str, address: str | None
) -> Borrower:
    """The borrower with that phone (kept as they are), or a new one.

    An agent never attaches a loan to a borrower out of their scope: the neutral refusal.
    """
    found = session.scalars(select(Borrower).where(Borrower.phone == phone)).first()
    if found is None:
        borrower = Borrower(name=name, name_key=name_key(name), phone=phone, address=address)
        try:
            with session.begin_nested():
                session.add(borrower)
            return borrower
        except IntegrityError:
            # Someone added the same phone a moment ago: theirs, if actor may use it.
            found = session.scalars(select(Borrower).where(Borrower.phone == phone)).one()
    check_borrower(session, actor=actor, borrower_id=found.id)
    return found


def _agent_for(session: Session, actor: Actor, agent_id: int | None) -> int | None:
    """Who will hold the new loan: an agent always holds their own."""
    if actor.role is Role.AGENT:
        if agent_id not in (None, actor.staff_id):
            raise AccessDenied("Agents add loans to their own portfolio.", code="role")
        return actor.staff_id
    if agent_id is None:
        return actor.staff_id if actor.role is Role.MANAGER else None
    return active_holder(session, agent_id).id


def _insert_numbered(session: Session, loan: Loan, given: str | None) -> None:
    """Insert loan under the given number or a fresh random one (a SAVEPOINT per try)."""
    for _ in range(1 if given else _NUMBER_TRIES):
        loan.loan_number = given or "LN-" + "".join(
            secrets.choice(_NUMBER_ALPHABET) for _ in range(6)
        )
        try:
            with session.begin_nested():
                session.add(loan)
            return
        except IntegrityError:
            log.info("loan number %s taken, trying another", loan.loan_number)
    if given:
        raise Conflict(f"Loan number {given} is already in use.", code="loan_number_taken")
    raise Conflict("Could not pick a free loan number; please try again.", code="loan_number")


def add_loan(
    session: Session,
    *,
    actor: Actor,
    phone: str,
    name: str,
    address: str | None,
    principal: Decimal,
    first_due: date,
    today: date,
    count: int = 1,
    frequency: Frequency = Frequency.MONTHLY,
    method: InterestMethod = InterestMethod.NONE,
    rate: Decimal = Decimal(0),
    loan_number: str | None = None,
    agent_id: int | None = None,
    max_amount: Decimal = DEFAULT_MAX_AMOUNT,
    agency: Agency = agencies.DEFAULT,
) -> LoanView:
    """A new loan with its schedule; the borrower is found by phone or created."""
    e164 = parse_phone(phone, region=agency.region)
    clean = clean_name(name)
    addr = clean_text(address, field="address", max_len=300, required=False)
    frequency, method = Frequency(frequency), InterestMethod(method)
    check_terms(
        principal=principal,
        first_due=first_due,
        today=today,
        count=count,
        rate=rate,
        method=method,
        max_amount=max_amount,
        agency=agency,
    )
    terms = {
        "principal": principal,
        "count": count,
        "frequency": frequency,
        "first_due": first_due,
        "method": method,
        "annual_rate": rate,
    }
    schedule = checked_schedule(terms, agency)
    number = parse_loan_number(loan_number) if loan_number else None
    if number and session.scalar(select(Loan.id).where(Loan.loan_number == number)):
        raise Conflict(f"Loan number {number} is already in use.", code="loan_number_taken")
    holder = _agent_for(session, actor, agent_id)
    # One SAVEPOINT around both inserts: a late refusal leaves no stray borrower behind.
    with session.begin_nested():
        borrower = _borrower_for(session, actor, phone=e164, name=clean, address=addr)
        loan = _new_loan(actor, borrower, holder, schedule, terms)
        _insert_numbered(session, loan, number)
    details = {
        "loan_number": loan.loan_number,
        "borrower_id": borrower.id,
        "agent_id": holder,
        **terms,
    }
    kept = None if borrower.name == clean else f"existing borrower kept name; {clean} was given"
    loan_event(
        session, loan_id=loan.id, actor=actor, kind=LoanEventKind.CREATED, after=details, note=kept
    )
    audit(
        session,
        actor=actor,
        action=AuditAction.LOAN_CREATED,
        target_type="loan",
        target_id=loan.id,
        details={**details, "name_given": clean if kept else None},
    )
    session.flush()
    return loan_view(session, loan, today=today)


def _new_loan(
    actor: Actor,
    borrower: Borrower,
    holder: int | None,
    schedule: list[ScheduledInstallment],
    terms: dict[str, Any],
) -> Loan:
    loan = Loan(
        borrower=borrower,
        agent_id=holder,
        principal=terms["principal"],
        interest_method=terms["method"],
        interest_rate=terms["annual_rate"],
        installments_count=terms["count"],
        frequency=terms["frequency"],
        first_due_date=terms["first_due"],
        state=LoanState.ACTIVE,
        version=0,
        created_by_id=actor.staff_id,
        installments=[
            Installment(
                seq=s.seq,
                due_date=s.due_date,
                principal_due=s.principal,
                interest_due=s.interest,
                fee_due=Decimal(0),
                amount_paid=Decimal(0),
                fee_paid=Decimal(0),
            )
            for s in schedule
        ],
    )
    ledger.refresh(loan)
    ledger.touch(loan, actor)
    return loan


def find_borrower(
    session: Session, *, phone: str, region: str, actor: Actor | None = None
) -> BorrowerView | None:
    """The borrower with this phone, to offer instead of typing them in again.

    With an actor, a borrower out of their scope (access.scope_borrowers) is refused with
    the neutral AccessDenied "phone_unavailable": no name, address or loan count leaks,
    and no second borrower with the same phone can be started.
    """
    e164 = parse_phone(phone, region=region)
    stmt = (
        select(Borrower, func.count(Loan.id))
        .outerjoin(Loan, Loan.borrower_id == Borrower.id)
        .where(Borrower.phone == e164)
        .group_by(Borrower.id)
    )
    row = session.execute(stmt).first()
    if row is None:
        return None
    b, loans = row
    if actor is not None:
        check_borrower(session, actor=actor, borrower_id=b.id)
    return BorrowerView(b.id, b.name, b.phone, b.address, b.opted_out_at is not None, loans)
