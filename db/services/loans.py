"""Loans: add, view, edit, reassign, close, write off and delete, each with its history rows."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import clock
from db.models import (
    Borrower,
    Frequency,
    Installment,
    InterestMethod,
    Loan,
    LoanEventKind,
    LoanState,
    Payment,
    Role,
    Staff,
    StaffState,
)
from db.money import ScheduledInstallment, build_schedule, format_money, q
from db.services import ledger
from db.services.access import Actor, check_loan, require_role
from db.services.audit import AuditAction, audit, loan_event
from db.services.errors import AccessDenied, Conflict, InvalidInput
from db.services.loan_queries import (
    NO_TAGS,
    HistoryItem,
    HistoryPage,
    LoanFilter,
    LoanPage,
    list_loans,
    load_loan,
    loan_history,
    search_loans,
)
from db.services.views import BorrowerView, LoanView, loan_view
from db.validation import (
    clean_name,
    clean_text,
    name_key,
    parse_amount,
    parse_date,
    parse_loan_number,
    parse_phone,
)

# The reading half lives in loan_queries and is re-exported: callers need one module.
__all__ = [
    "EditResult", "EditableField", "HistoryItem", "HistoryPage", "LoanFilter", "LoanPage",
    "add_loan", "close_loan", "delete_loan", "edit_loan", "find_borrower", "get_loan",
    "get_loan_by_id", "list_loans", "loan_history", "reassign_loan", "search_loans",
    "write_off_loan",
]

log = logging.getLogger(__name__)

MAX_INSTALLMENTS = 360
MAX_DAYS_AHEAD = 3660
DEFAULT_MAX_AMOUNT = Decimal("100000000")
_NUMBER_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_NUMBER_TRIES = 8


def _check_terms(
    *, principal: Decimal, first_due: date, today: date, count: int, rate: Decimal,
    method: InterestMethod, max_amount: Decimal,
) -> None:
    if not isinstance(principal, Decimal) or not principal.is_finite() or principal <= 0:
        raise InvalidInput("The amount must be more than zero.", code="amount_not_positive")
    if principal > max_amount:
        raise InvalidInput(
            f"That amount is above the limit of {max_amount:,}.", code="amount_too_large"
        )
    if principal != q(principal):
        raise InvalidInput("Use at most 2 decimal places.", code="amount_decimals", places=2)
    if first_due < today:
        raise InvalidInput("That date has passed; give today or a later date.", code="date_past")
    if (first_due - today).days > MAX_DAYS_AHEAD:
        raise InvalidInput("That date is too far away.", code="date_far")
    if not 1 <= count <= MAX_INSTALLMENTS:
        raise InvalidInput(
            f"The installments must be between 1 and {MAX_INSTALLMENTS}.", code="int_range",
            field="installments",
        )
    finite = isinstance(rate, Decimal) and rate.is_finite()
    if not finite or not 0 <= rate <= 100 or rate != round(rate, 4):
        raise InvalidInput("The yearly rate must be 0 to 100%.", code="rate_range")
    if method is InterestMethod.NONE and rate:
        raise InvalidInput("Choose flat or reducing interest to set a rate.", code="rate_method")


def _schedule(terms: dict) -> list[ScheduledInstallment]:
    """The repayment schedule, refused when some installment would be 0.00."""
    schedule = build_schedule(**terms)
    if any(s.amount <= 0 for s in schedule):
        raise InvalidInput(
            f"{terms['principal']} is too little for {len(schedule)} installments; "
            "use fewer installments.", code="installments_too_many",
        )
    return schedule


def _borrower_for(session: Session, *, phone: str, name: str, address: str | None) -> Borrower:
    """The borrower with that phone (kept as they are), or a new one."""
    found = session.scalars(select(Borrower).where(Borrower.phone == phone)).first()
    if found is not None:
        return found
    borrower = Borrower(name=name, name_key=name_key(name), phone=phone, address=address)
    try:
        with session.begin_nested():
            session.add(borrower)
    except IntegrityError:
        # Someone added the same phone a moment ago: use theirs.
        return session.scalars(select(Borrower).where(Borrower.phone == phone)).one()
    return borrower


def _agent_for(session: Session, actor: Actor, agent_id: int | None) -> int | None:
    """Who will hold the new loan: an agent always holds their own."""
    if actor.role is Role.AGENT:
        if agent_id not in (None, actor.staff_id):
            raise AccessDenied("Agents add loans to their own portfolio.", code="role")
        return actor.staff_id
    if agent_id is None:
        return actor.staff_id if actor.role is Role.MANAGER else None
    return _active_holder(session, agent_id).id


def _active_holder(session: Session, staff_id: int) -> Staff:
    staff = session.get(Staff, staff_id)
    if (
        staff is None
        or staff.state != StaffState.ACTIVE
        or staff.role not in (Role.AGENT, Role.MANAGER)
    ):
        raise InvalidInput("That is not an active agent or manager.", code="agent_invalid")
    return staff


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
    region: str = "IN",
    max_amount: Decimal = DEFAULT_MAX_AMOUNT,
) -> LoanView:
    """A new loan with its schedule; the borrower is found by phone or created."""
    e164 = parse_phone(phone, region=region)
    clean = clean_name(name)
    addr = clean_text(address, field="address", max_len=300, required=False)
    frequency, method = Frequency(frequency), InterestMethod(method)
    _check_terms(principal=principal, first_due=first_due, today=today, count=count, rate=rate,
                 method=method, max_amount=max_amount)
    terms = {"principal": principal, "count": count, "frequency": frequency,
             "first_due": first_due, "method": method, "annual_rate": rate}
    schedule = _schedule(terms)
    number = parse_loan_number(loan_number) if loan_number else None
    if number and session.scalar(select(Loan.id).where(Loan.loan_number == number)):
        raise Conflict(f"Loan number {number} is already in use.", code="loan_number_taken")
    holder = _agent_for(session, actor, agent_id)
    # One SAVEPOINT around both inserts: a late refusal leaves no stray borrower behind.
    with session.begin_nested():
        borrower = _borrower_for(session, phone=e164, name=clean, address=addr)
        loan = _new_loan(actor, borrower, holder, schedule, terms)
        _insert_numbered(session, loan, number)
    details = {"loan_number": loan.loan_number, "borrower_id": borrower.id, "agent_id": holder,
               **terms}
    kept = None if borrower.name == clean else f"existing borrower kept name; {clean} was given"
    loan_event(session, loan_id=loan.id, actor=actor, kind=LoanEventKind.CREATED, after=details,
               note=kept)
    audit(session, actor=actor, action=AuditAction.LOAN_CREATED, target_type="loan",
          target_id=loan.id, details={**details, "name_given": clean if kept else None})
    session.flush()
    return loan_view(session, loan, today=today)


def _new_loan(actor: Actor, borrower: Borrower, holder: int | None,
              schedule: list[ScheduledInstallment], terms: dict) -> Loan:
    loan = Loan(
        borrower=borrower, agent_id=holder, principal=terms["principal"],
        interest_method=terms["method"], interest_rate=terms["annual_rate"],
        installments_count=terms["count"], frequency=terms["frequency"],
        first_due_date=terms["first_due"], state=LoanState.ACTIVE, version=0,
        created_by_id=actor.staff_id,
        installments=[
            Installment(seq=s.seq, due_date=s.due_date, principal_due=s.principal,
                        interest_due=s.interest, fee_due=Decimal(0), amount_paid=Decimal(0),
                        fee_paid=Decimal(0))
            for s in schedule
        ],
    )
    ledger.refresh(loan)
    ledger.touch(loan, actor)
    return loan


def find_borrower(session: Session, *, phone: str, region: str) -> BorrowerView | None:
    """The borrower with this phone, to offer instead of typing them in again."""
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
    return BorrowerView(b.id, b.name, b.phone, b.address, b.opted_out_at is not None, loans)


def get_loan(session: Session, *, actor: Actor, loan_number: str, today: date) -> LoanView:
    """The card of a loan actor may see; NotFound otherwise."""
    return loan_view(session, load_loan(session, actor, loan_number), today=today)


def get_loan_by_id(session: Session, *, actor: Actor, loan_id: int, today: date) -> LoanView:
    """The card of a loan by its id (from a button), if actor may see it."""
    loan = session.get(Loan, loan_id, options=[NO_TAGS])
    return loan_view(session, check_loan(actor, loan), today=today)


# -- changes ------------------------------------------------------------------------------


class EditableField(StrEnum):
    BORROWER_NAME = "borrower_name"
    BORROWER_PHONE = "borrower_phone"
    BORROWER_ADDRESS = "borrower_address"
    NEXT_DUE_DATE = "next_due_date"
    PRINCIPAL = "principal"


@dataclass(frozen=True)
class EditResult:
    loan: LoanView
    field: EditableField
    before: str
    after: str


def _changeable(
    session: Session, actor: Actor, loan_number: str, expected_version: int | None
) -> Loan:
    """The loan locked for a change; refused when stale, closed or written off."""
    loan = load_loan(session, actor, loan_number, lock=True)
    if expected_version is not None and expected_version != loan.version:
        raise Conflict(
            "This loan changed since you opened it; here is the current card.", code="stale",
            version=loan.version,
        )
    if loan.state is not LoanState.ACTIVE:
        raise Conflict(
            f"Loan {loan.loan_number} is {loan.state.value.replace('_', ' ')}; "
            "it cannot be changed.",
            code="loan_inactive", state=loan.state,
        )
    return loan


def _parse(field: EditableField, value: str, *, today: date, region: str,
           max_amount: Decimal) -> object:
    """value read the way field needs it (InvalidInput with the field's own reason)."""
    if field is EditableField.BORROWER_NAME:
        return clean_name(value)
    if field is EditableField.BORROWER_PHONE:
        return parse_phone(value, region=region)
    if field is EditableField.BORROWER_ADDRESS:
        return clean_text(value, field="address", max_len=300, required=False)
    if field is EditableField.NEXT_DUE_DATE:
        return parse_date(value, today=today, future=True)
    return parse_amount(value, max_amount=max_amount)


def _current(loan: Loan, field: EditableField) -> object:
    b = loan.borrower
    return {
        EditableField.BORROWER_NAME: b.name,
        EditableField.BORROWER_PHONE: b.phone,
        EditableField.BORROWER_ADDRESS: b.address,
        EditableField.NEXT_DUE_DATE: loan.next_due_date,
        EditableField.PRINCIPAL: loan.principal,
    }[field]


def _set_phone(session: Session, borrower: Borrower, phone: str) -> None:
    taken = session.scalar(
        select(Borrower.id).where(Borrower.phone == phone, Borrower.id != borrower.id)
    )
    if taken is None:
        borrower.phone = phone
        try:
            with session.begin_nested():
                session.flush()
            return
        except IntegrityError:
            pass  # taken a moment ago by another transaction
    raise Conflict(f"Another borrower already has the phone {phone}.", code="phone_taken")


def _move_due_dates(loan: Loan, new: date) -> None:
    if loan.next_due_date is None:
        raise Conflict("Nothing is due on this loan.", code="nothing_due")
    shift = new - loan.next_due_date
    for inst in loan.installments:
        if not ledger.is_settled(inst):
            inst.due_date += shift


def _set_principal(session: Session, loan: Loan, amount: Decimal) -> None:
    paid = session.scalar(select(func.count(Payment.id)).where(Payment.loan_id == loan.id))
    if loan.amount_paid > 0 or paid:
        raise Conflict(
            "The amount can only be changed before any payment is recorded.", code="has_payments"
        )
    schedule = _schedule({
        "principal": amount, "count": loan.installments_count, "frequency": loan.frequency,
        "first_due": loan.first_due_date, "method": loan.interest_method,
        "annual_rate": loan.interest_rate,
    })
    loan.principal = amount
    # Same count: each installment keeps its row, its (maybe moved) date and any late fee.
    for inst, new in zip(loan.installments, schedule, strict=True):
        inst.principal_due, inst.interest_due = new.principal, new.interest


def _apply(session: Session, loan: Loan, field: EditableField, new) -> None:
    borrower = loan.borrower
    if field is EditableField.BORROWER_NAME:
        borrower.name, borrower.name_key = new, name_key(new)
    elif field is EditableField.BORROWER_ADDRESS:
        borrower.address = new
    elif field is EditableField.BORROWER_PHONE:
        _set_phone(session, borrower, new)
    elif field is EditableField.NEXT_DUE_DATE:
        _move_due_dates(loan, new)
    else:
        _set_principal(session, loan, new)


def edit_loan(
    session: Session, *, actor: Actor, loan_number: str, field: EditableField, value: str,
    expected_version: int | None, today: date, region: str = "IN",
    max_amount: Decimal = DEFAULT_MAX_AMOUNT,
) -> EditResult:
    """Change one field of an active loan (or its borrower), with its history rows."""
    field = EditableField(field)
    loan = _changeable(session, actor, loan_number, expected_version)
    new = _parse(field, value, today=today, region=region, max_amount=max_amount)
    old = _current(loan, field)
    if new == old:
        raise InvalidInput("That is the same as before: nothing to change.", code="unchanged")
    _apply(session, loan, field, new)
    ledger.refresh(loan)
    ledger.touch(loan, actor)
    before, after = ("" if v is None else str(v) for v in (old, _current(loan, field)))
    _record(session, actor, loan, LoanEventKind.EDITED, AuditAction.LOAN_EDITED,
            before={field.value: before}, after={field.value: after})
    return EditResult(loan_view(session, loan, today=today), field, before, after)


def reassign_loan(
    session: Session, *, actor: Actor, loan_number: str, agent_id: int, today: date
) -> LoanView:
    """Give a loan to another active agent or manager (managers and admins only)."""
    require_role(actor, Role.MANAGER, "reassign loans")
    loan = load_loan(session, actor, loan_number, lock=True)
    target = _active_holder(session, agent_id)
    if loan.agent_id == target.id:
        raise InvalidInput(f"Loan {loan.loan_number} is already with {target.name}.",
                           code="unchanged")
    before = {"agent_id": loan.agent_id}
    loan.agent_id = target.id
    ledger.touch(loan, actor)
    _record(session, actor, loan, LoanEventKind.REASSIGNED, AuditAction.LOAN_REASSIGNED,
            before=before, after={"agent_id": target.id, "agent": target.name})
    return loan_view(session, loan, today=today)


def close_loan(
    session: Session, *, actor: Actor, loan_number: str, expected_version: int | None,
    today: date, currency: str = "INR",
) -> LoanView:
    """Close a fully paid loan by hand (payments close loans they settle themselves)."""
    loan = _changeable(session, actor, loan_number, expected_version)
    if loan.outstanding != 0:
        owed = format_money(loan.outstanding, currency)
        raise Conflict(f"Loan {loan.loan_number} still has {owed} to pay; it cannot be closed.",
                       code="not_paid", outstanding=loan.outstanding)
    loan.state, loan.closed_at = LoanState.CLOSED, clock.utcnow()
    ledger.touch(loan, actor)
    _record(session, actor, loan, LoanEventKind.CLOSED, AuditAction.LOAN_CLOSED,
            before={"state": LoanState.ACTIVE}, after={"state": LoanState.CLOSED})
    return loan_view(session, loan, today=today)


def write_off_loan(
    session: Session, *, actor: Actor, loan_number: str, reason: str,
    expected_version: int | None, today: date,
) -> LoanView:
    """Write off an active loan that will not be repaid (managers and admins, with a reason)."""
    require_role(actor, Role.MANAGER, "write off loans")
    why = clean_text(reason, field="reason", max_len=300)
    if why is None or len(why) < 3:
        raise InvalidInput("Give a reason of at least 3 characters.", code="reason_short")
    loan = _changeable(session, actor, loan_number, expected_version)
    loan.state, loan.state_reason = LoanState.WRITTEN_OFF, why
    ledger.touch(loan, actor)
    _record(session, actor, loan, LoanEventKind.WRITTEN_OFF, AuditAction.LOAN_WRITTEN_OFF,
            before={"state": LoanState.ACTIVE, "outstanding": loan.outstanding},
            after={"state": LoanState.WRITTEN_OFF}, note=why)
    return loan_view(session, loan, today=today)


def delete_loan(session: Session, *, actor: Actor, loan_number: str, force: bool = False) -> str:
    """Delete a loan and everything hanging off it (admins only); the audit row remains."""
    require_role(actor, Role.ADMIN, "delete loans")
    loan = load_loan(session, actor, loan_number, lock=True)
    payments = session.scalar(select(func.count(Payment.id)).where(Payment.loan_id == loan.id))
    if payments and not force:
        raise Conflict(
            f"Loan {loan.loan_number} has {payments} payments; close it instead, "
            "or delete with force.",
            code="has_payments", payments=payments,
        )
    number = loan.loan_number
    audit(session, actor=actor, action=AuditAction.LOAN_DELETED, target_type="loan",
          target_id=loan.id, details={
              "loan_number": number, "borrower": loan.borrower.name,
              "borrower_phone": loan.borrower.phone, "principal": loan.principal,
              "payments": payments, "forced": force,
          })
    session.delete(loan)
    session.flush()
    log.info("loan %s deleted by staff %s", number, actor.staff_id)
    return number


def _record(session: Session, actor: Actor, loan: Loan, kind: LoanEventKind,
            action: AuditAction, *, before: dict, after: dict, note: str | None = None) -> None:
    """The loan_event and audit rows of one change, flushed with it."""
    loan_event(session, loan_id=loan.id, actor=actor, kind=kind, before=before, after=after,
               note=note)
    was = {f"{key}_before": value for key, value in before.items()}
    audit(session, actor=actor, action=action, target_type="loan", target_id=loan.id,
          details={"loan_number": loan.loan_number, **was, **after, "note": note})
    session.flush()
