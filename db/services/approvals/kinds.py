"""One handler per approval kind: how a request is asked for, and how approving applies it.

A request is checked with the very service that will apply it, run in a savepoint that is
rolled back (nothing written), so a request that could never be applied is refused at once.
The change is applied as the approver (they decided it), with the requester's reason.
Settlements, plans, restructures and fee waivers plug in here later: a member of
ApprovalKind and a Handler in HANDLERS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from db.models import ApprovalKind, ApprovalRequest, Loan, Payment, Role
from db.services.access import (
    DEFAULT_WRITE_OFF_ADMIN_ABOVE,
    Actor,
    approver_role,
    require_role,
)
from db.services.approvals.requests import ApprovalView, submit
from db.services.collection.payments import reverse_payment
from db.services.errors import Conflict, NotFound
from db.services.loans.changes import EditableField, edit_loan, write_off_loan
from db.services.loans.guards import find_loan


def _dry_run(session: Session, service: Callable[..., Any], **arguments: Any) -> Any:
    """The service's answer (or its refusal) with nothing kept: a rolled-back savepoint."""
    savepoint = session.begin_nested()
    try:
        return service(session, **arguments)
    finally:
        savepoint.rollback()


# --- asking --------------------------------------------------------------------------------


def request_write_off(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    reason: str,
    expected_version: int | None,
    today: date,
    admin_above: Decimal = DEFAULT_WRITE_OFF_ADMIN_ABOVE,
) -> ApprovalView:
    """Ask to write a loan off (managers and admins); another manager or admin decides."""
    require_role(actor, Role.MANAGER, "write off loans")
    view = _dry_run(
        session,
        write_off_loan,
        actor=actor,
        loan_number=loan_number,
        reason=reason,
        expected_version=expected_version,
        today=today,
    )
    loan = find_loan(session, actor=actor, loan_number=loan_number, lock=True)
    least = approver_role(
        ApprovalKind.WRITE_OFF, amount=loan.outstanding, write_off_admin_above=admin_above
    )
    payload = {"loan_number": loan.loan_number, "outstanding": loan.outstanding}
    return submit(
        session,
        actor=actor,
        kind=ApprovalKind.WRITE_OFF,
        loan=loan,
        payload=payload,
        least=least,
        note=view.state_reason,
    )


def request_reversal(
    session: Session, *, actor: Actor, payment_id: int, reason: str, today: date
) -> ApprovalView:
    """Ask to reverse a payment (managers and admins); another manager or admin decides."""
    require_role(actor, Role.MANAGER, "reverse a payment")
    _dry_run(
        session, reverse_payment, actor=actor, payment_id=payment_id, reason=reason, today=today
    )
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"No payment {payment_id} found.", code="payment_not_found")
    loan = session.get(Loan, payment.loan_id)  # the dry run checked actor may see it
    if loan is None:
        raise NotFound(f"No payment {payment_id} found.", code="payment_not_found")
    payload = {"payment_id": payment.id, "amount": payment.amount, "loan_number": loan.loan_number}
    return submit(
        session,
        actor=actor,
        kind=ApprovalKind.REVERSAL,
        loan=loan,
        payload=payload,
        least=approver_role(ApprovalKind.REVERSAL),
        note=reason.strip(),
    )


# --- applying ------------------------------------------------------------------------------

Apply = Callable[[Session, Actor, ApprovalRequest, date], None]


@dataclass(frozen=True)
class Handler:
    """What approving a request of one kind does (raises a ServiceError when it cannot)."""

    apply: Apply


def _apply_write_off(session: Session, approver: Actor, row: ApprovalRequest, today: date) -> None:
    write_off_loan(
        session,
        actor=approver,
        loan_number=row.payload["loan_number"],
        reason=row.note or "",
        expected_version=None,
        today=today,
    )


def _apply_reversal(session: Session, approver: Actor, row: ApprovalRequest, today: date) -> None:
    reverse_payment(
        session,
        actor=approver,
        payment_id=int(row.payload["payment_id"]),
        reason=row.note or "",
        today=today,
    )


def _apply_due_date_move(
    session: Session, approver: Actor, row: ApprovalRequest, today: date
) -> None:
    loan = find_loan(session, actor=approver, loan_number=row.payload["loan_number"], lock=True)
    if str(loan.next_due_date) != row.payload["from"]:
        raise Conflict(
            f"Loan {loan.loan_number}'s next due date is no longer {row.payload['from']}; "
            "the request no longer fits it.",
            code="approval_outdated",
        )
    edit_loan(
        session,
        actor=approver,
        loan_number=loan.loan_number,
        field=EditableField.NEXT_DUE_DATE,
        value=row.payload["to"],
        expected_version=None,
        today=today,
        reason=row.note,
    )


HANDLERS: dict[ApprovalKind, Handler] = {
    ApprovalKind.WRITE_OFF: Handler(_apply_write_off),
    ApprovalKind.REVERSAL: Handler(_apply_reversal),
    ApprovalKind.DUE_DATE_MOVE: Handler(_apply_due_date_move),
}
