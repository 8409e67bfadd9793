"""Changing a loan: edit a field, reassign, close, write off; each with history rows.

Loans are never deleted: db/services/loans/archive.py archives and restores them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import agency as agencies
from db import clock
from db.agency import Agency
from db.models import Borrower, Loan, LoanEventKind, LoanState, Payment, Role
from db.money import format_money
from db.services.access import Actor, check_borrower_editable, require_role
from db.services.audit.write import AuditAction, audit, loan_event
from db.services.collection import ledger
from db.services.errors import Conflict, InvalidInput
from db.services.loans.guards import find_loan, refuse_stale, require_active
from db.services.loans.snapshots import LoanView, loan_view
from db.services.loans.terms import DEFAULT_MAX_AMOUNT, active_holder, checked_schedule
from db.services.sms.truth import (
    WithdrawReason,
    restamp_for_loan,
    withdraw_for_borrower,
    withdraw_for_loan,
)
from db.validation import (
    clean_name,
    clean_text,
    name_key,
    parse_amount,
    parse_date,
    parse_phone,
)

log = logging.getLogger(__name__)


# An agent moving a due date further than this (either way) must say why (issue 9 item 13);
# the reason is kept in the history and the audit row. Managers and admins need none.
MAX_AGENT_DUE_SHIFT_DAYS = 30


class EditableField(StrEnum):
    BORROWER_NAME = "borrower_name"
    BORROWER_PHONE = "borrower_phone"
    BORROWER_ADDRESS = "borrower_address"
    NEXT_DUE_DATE = "next_due_date"
    PRINCIPAL = "principal"


_BORROWER_FIELDS = frozenset(
    {EditableField.BORROWER_NAME, EditableField.BORROWER_PHONE, EditableField.BORROWER_ADDRESS}
)


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
    loan = find_loan(session, actor=actor, loan_number=loan_number, lock=True)
    refuse_stale(loan, expected_version)
    require_active(loan)
    return loan


def _parse(
    field: EditableField, value: str, *, today: date, agency: Agency, max_amount: Decimal
) -> object:
    """value read the way field needs it (InvalidInput with the field's own reason)."""
    if field is EditableField.BORROWER_NAME:
        return clean_name(value)
    if field is EditableField.BORROWER_PHONE:
        return parse_phone(value, region=agency.region)
    if field is EditableField.BORROWER_ADDRESS:
        return clean_text(value, field="address", max_len=300, required=False)
    if field is EditableField.NEXT_DUE_DATE:
        return parse_date(value, today=today, future=True)
    return parse_amount(value, max_amount=max_amount, agency=agency)


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


def _set_principal(session: Session, loan: Loan, amount: Decimal, agency: Agency) -> None:
    paid = session.scalar(select(func.count(Payment.id)).where(Payment.loan_id == loan.id))
    if loan.amount_paid > 0 or paid:
        raise Conflict(
            "The amount can only be changed before any payment is recorded.", code="has_payments"
        )
    schedule = checked_schedule(
        {
            "principal": amount,
            "count": loan.installments_count,
            "frequency": loan.frequency,
            "first_due": loan.first_due_date,
            "method": loan.interest_method,
            "annual_rate": loan.interest_rate,
        },
        agency,
    )
    loan.principal = amount
    # Same count: each installment keeps its row, its (maybe moved) date and any late fee.
    for inst, new in zip(loan.installments, schedule, strict=True):
        inst.principal_due, inst.interest_due = new.principal, new.interest


def _apply(session: Session, loan: Loan, field: EditableField, new: Any, agency: Agency) -> None:
    # new is what _parse read for field: its type follows the field.
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
        _set_principal(session, loan, new, agency)


def _shift_reason(
    actor: Actor, field: EditableField, old: object, new: object, reason: str | None
) -> str | None:
    """The reason an agent must give for a long due-date move (cleaned), else reason as is."""
    why = clean_text(reason, field="reason", max_len=300, required=False)
    if (
        field is not EditableField.NEXT_DUE_DATE
        or actor.at_least(Role.MANAGER)
        or not isinstance(old, date)  # no due date yet
        or not isinstance(new, date)
        or abs((new - old).days) <= MAX_AGENT_DUE_SHIFT_DAYS
    ):
        return why
    if why is None:
        raise InvalidInput(
            f"Moving a due date by more than {MAX_AGENT_DUE_SHIFT_DAYS} days needs a reason.",
            code="reason_needed",
        )
    if len(why) < 3:
        raise InvalidInput("Give a reason of at least 3 characters.", code="reason_short")
    return why


def _withdraw_untrue(session: Session, loan: Loan, field: EditableField) -> None:
    """Withdraw the queued SMS the edit made untrue; a name or address keeps them true."""
    if field is EditableField.BORROWER_PHONE:
        withdraw_for_borrower(session, borrower=loan.borrower, reason=WithdrawReason.PHONE_CHANGED)
    if field is EditableField.NEXT_DUE_DATE:
        withdraw_for_loan(session, loan=loan, reason=WithdrawReason.DUE_DATE_CHANGED)
    elif field is EditableField.PRINCIPAL:
        withdraw_for_loan(session, loan=loan, reason=WithdrawReason.AMOUNT_CHANGED)
    else:
        restamp_for_loan(session, loan=loan)


def edit_loan(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    field: EditableField,
    value: str,
    expected_version: int | None,
    today: date,
    max_amount: Decimal = DEFAULT_MAX_AMOUNT,
    reason: str | None = None,
    agency: Agency = agencies.DEFAULT,
) -> EditResult:
    """Change one field of an active loan (or its borrower), with its history rows.

    reason goes into the history and audit rows; an agent moving a due date by more than
    MAX_AGENT_DUE_SHIFT_DAYS must give one (InvalidInput code reason_needed otherwise).
    """
    field = EditableField(field)
    loan = _changeable(session, actor, loan_number, expected_version)
    if field in _BORROWER_FIELDS:
        check_borrower_editable(session, actor=actor, borrower_id=loan.borrower_id)
    new = _parse(field, value, today=today, agency=agency, max_amount=max_amount)
    old = _current(loan, field)
    if new == old:
        raise InvalidInput("That is the same as before: nothing to change.", code="unchanged")
    why = _shift_reason(actor, field, old, new, reason)
    _apply(session, loan, field, new, agency)
    ledger.refresh(loan)
    ledger.touch(loan, actor)
    _withdraw_untrue(session, loan, field)
    before, after = ("" if v is None else str(v) for v in (old, _current(loan, field)))
    _record(
        session,
        actor,
        loan,
        LoanEventKind.EDITED,
        AuditAction.LOAN_EDITED,
        before={field.value: before},
        after={field.value: after},
        note=why,
    )
    return EditResult(loan_view(session, loan, today=today), field, before, after)


def reassign_loan(
    session: Session, *, actor: Actor, loan_number: str, agent_id: int, today: date
) -> LoanView:
    """Give a loan to another active agent or manager (managers and admins only)."""
    require_role(actor, Role.MANAGER, "reassign loans")
    loan = find_loan(session, actor=actor, loan_number=loan_number, lock=True)
    target = active_holder(session, agent_id)
    if loan.agent_id == target.id:
        raise InvalidInput(
            f"Loan {loan.loan_number} is already with {target.name}.", code="unchanged"
        )
    before = {"agent_id": loan.agent_id}
    loan.agent_id = target.id
    ledger.touch(loan, actor)
    restamp_for_loan(session, loan=loan)
    _record(
        session,
        actor,
        loan,
        LoanEventKind.REASSIGNED,
        AuditAction.LOAN_REASSIGNED,
        before=before,
        after={"agent_id": target.id, "agent": target.name},
    )
    return loan_view(session, loan, today=today)


def close_loan(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    expected_version: int | None,
    today: date,
    agency: Agency = agencies.DEFAULT,
) -> LoanView:
    """Close a fully paid loan by hand (payments close loans they settle themselves)."""
    loan = _changeable(session, actor, loan_number, expected_version)
    if loan.outstanding != 0:
        owed = format_money(loan.outstanding, agency)
        raise Conflict(
            f"Loan {loan.loan_number} still has {owed} to pay; it cannot be closed.",
            code="not_paid",
            outstanding=loan.outstanding,
        )
    loan.state, loan.closed_at = LoanState.CLOSED, clock.utcnow()
    ledger.touch(loan, actor)
    withdraw_for_loan(session, loan=loan, reason=WithdrawReason.CLOSED)
    _record(
        session,
        actor,
        loan,
        LoanEventKind.CLOSED,
        AuditAction.LOAN_CLOSED,
        before={"state": LoanState.ACTIVE},
        after={"state": LoanState.CLOSED},
    )
    return loan_view(session, loan, today=today)


def write_off_loan(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    reason: str,
    expected_version: int | None,
    today: date,
) -> LoanView:
    """Write off an active loan that will not be repaid (managers and admins, with a reason)."""
    require_role(actor, Role.MANAGER, "write off loans")
    why = clean_text(reason, field="reason", max_len=300)
    if why is None or len(why) < 3:
        raise InvalidInput("Give a reason of at least 3 characters.", code="reason_short")
    loan = _changeable(session, actor, loan_number, expected_version)
    loan.state, loan.state_reason = LoanState.WRITTEN_OFF, why
    ledger.touch(loan, actor)
    withdraw_for_loan(session, loan=loan, reason=WithdrawReason.WRITTEN_OFF)
    _record(
        session,
        actor,
        loan,
        LoanEventKind.WRITTEN_OFF,
        AuditAction.LOAN_WRITTEN_OFF,
        before={"state": LoanState.ACTIVE, "outstanding": loan.outstanding},
        after={"state": LoanState.WRITTEN_OFF},
        note=why,
    )
    return loan_view(session, loan, today=today)


def _record(
    session: Session,
    actor: Actor,
    loan: Loan,
    kind: LoanEventKind,
    action: AuditAction,
    *,
    before: dict[str, Any],
    after: dict[str, Any],
    note: str | None = None,
) -> None:
    """The loan_event and audit rows of one change, flushed with it."""
    loan_event(
        session, loan_id=loan.id, actor=actor, kind=kind, before=before, after=after, note=note
    )
    was = {f"{key}_before": value for key, value in before.items()}
    audit(
        session,
        actor=actor,
        action=action,
        target_type="loan",
        target_id=loan.id,
        details={"loan_number": loan.loan_number, **was, **after, "note": note},
    )
    session.flush()
