"""Asking for a change, withdrawing the ask, and reading requests.

The services that make requests (kinds.py, and loans/changes.py for long due-date moves)
call submit(); it does not check the change itself, its caller has.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, aliased

from db import clock
from db.models import (
    ApprovalCard,
    ApprovalKind,
    ApprovalRequest,
    ApprovalState,
    Borrower,
    Loan,
    Role,
    Staff,
    StaffState,
)
from db.services.access import Actor
from db.services.audit.write import AuditAction, audit
from db.services.errors import AccessDenied, Conflict, NotFound
from db.services.paging import check_page
from db.session import rows_matched

_RANKED = {Role.MANAGER: (Role.MANAGER, Role.ADMIN), Role.ADMIN: (Role.ADMIN,)}


@dataclass(frozen=True)
class ApprovalView:
    id: int
    kind: ApprovalKind
    state: ApprovalState
    loan_id: int | None
    loan_number: str | None
    borrower_name: str | None
    payload: dict[str, Any]
    approver_role: Role
    requested_by_id: int
    requested_by: str
    note: str | None
    decided_by: str | None
    reason: str | None
    created_at: datetime
    decided_at: datetime | None


def _json(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, int | bool | None) else str(v)) for k, v in payload.items()}


def pending_for(session: Session, *, kind: ApprovalKind, loan_id: int) -> ApprovalRequest | None:
    """The pending request of this kind for this loan, if any."""
    stmt = select(ApprovalRequest).where(
        ApprovalRequest.kind == kind,
        ApprovalRequest.loan_id == loan_id,
        ApprovalRequest.state == ApprovalState.PENDING,
    )
    return session.scalars(stmt).first()


def submit(
    session: Session,
    *,
    actor: Actor,
    kind: ApprovalKind,
    loan: Loan | None,
    payload: dict[str, Any],
    least: Role,
    note: str | None,
) -> ApprovalView:
    """Store a pending request, its audit row and a card for each approver but the requester."""
    if loan is not None and pending_for(session, kind=kind, loan_id=loan.id) is not None:
        raise Conflict(
            f"Loan {loan.loan_number} already has a request of this kind awaiting approval.",
            code="approval_pending",
        )
    row = ApprovalRequest(
        kind=kind,
        loan_id=None if loan is None else loan.id,
        payload=_json(payload),
        approver_role=least,
        requested_by_id=actor.staff_id,
        note=note,
    )
    session.add(row)
    session.flush()
    approvers = session.scalars(
        select(Staff.id).where(
            Staff.state == StaffState.ACTIVE,
            Staff.role.in_(_RANKED[least]),
            Staff.id != actor.staff_id,
        )
    )
    session.add_all(ApprovalCard(approval_id=row.id, staff_id=sid) for sid in approvers)
    audit(
        session,
        actor=actor,
        action=AuditAction.APPROVAL_REQUESTED,
        target_type="approval",
        target_id=row.id,
        details={"kind": kind, "loan_id": row.loan_id, **row.payload, "note": note},
    )
    session.flush()
    return get_request(session, approval_id=row.id)


def withdraw(session: Session, *, actor: Actor, approval_id: int) -> ApprovalView:
    """The requester takes back a pending request (only they may; only while pending)."""
    row = session.get(ApprovalRequest, approval_id)
    if row is None:
        raise NotFound(f"No request #{approval_id} found.", code="approval_not_found")
    if row.requested_by_id != actor.staff_id:
        raise AccessDenied("Only the person who asked may withdraw a request.", code="not_yours")
    done = rows_matched(
        session.execute(
            update(ApprovalRequest)
            .where(
                ApprovalRequest.id == approval_id, ApprovalRequest.state == ApprovalState.PENDING
            )
            .values(state=ApprovalState.WITHDRAWN, decided_at=clock.utcnow())
            .execution_options(synchronize_session=False)
        )
    )
    if not done:
        raise already_decided(session, approval_id)
    audit(
        session,
        actor=actor,
        action=AuditAction.APPROVAL_WITHDRAWN,
        target_type="approval",
        target_id=approval_id,
        details={"kind": row.kind},
    )
    session.flush()
    return get_request(session, approval_id=approval_id)


def already_decided(session: Session, approval_id: int) -> Conflict:
    """The refusal for a request that is no longer pending, saying what became of it."""
    view = get_request(session, approval_id=approval_id)
    if view.state is ApprovalState.WITHDRAWN:
        text = f"Request #{approval_id} was withdrawn by {view.requested_by}."
    else:
        text = f"Request #{approval_id} was already {view.state.value} by {view.decided_by}."
    return Conflict(text, code="approval_decided", state=view.state)


def _views(session: Session, stmt: Select[tuple[ApprovalRequest]]) -> list[ApprovalView]:
    asker, decider = aliased(Staff), aliased(Staff)
    stmt = (
        stmt.add_columns(Loan.loan_number, Borrower.name, asker.name, decider.name)
        .outerjoin(Loan, Loan.id == ApprovalRequest.loan_id)
        .outerjoin(Borrower, Borrower.id == Loan.borrower_id)
        .join(asker, asker.id == ApprovalRequest.requested_by_id)
        .outerjoin(decider, decider.id == ApprovalRequest.decided_by_id)
        .execution_options(populate_existing=True)
    )
    return [
        ApprovalView(
            r.id,
            r.kind,
            r.state,
            r.loan_id,
            number,
            borrower,
            dict(r.payload),
            r.approver_role,
            r.requested_by_id,
            by,
            r.note,
            decided,
            r.reason,
            r.created_at,
            r.decided_at,
        )
        for r, number, borrower, by, decided in session.execute(stmt)
    ]


def get_request(session: Session, *, approval_id: int) -> ApprovalView:
    found = _views(session, select(ApprovalRequest).where(ApprovalRequest.id == approval_id))
    if not found:
        raise NotFound(f"No request #{approval_id} found.", code="approval_not_found")
    return found[0]


def list_pending(
    session: Session, *, actor: Actor, limit: int = 20, offset: int = 0
) -> list[ApprovalView]:
    """Pending requests, oldest first: every one to managers and admins, their own to agents."""
    check_page(limit, offset)
    stmt = select(ApprovalRequest).where(ApprovalRequest.state == ApprovalState.PENDING)
    if not actor.at_least(Role.MANAGER):
        stmt = stmt.where(ApprovalRequest.requested_by_id == actor.staff_id)
    elif not actor.at_least(Role.ADMIN):
        stmt = stmt.where(ApprovalRequest.approver_role != Role.ADMIN)
    stmt = stmt.order_by(ApprovalRequest.created_at, ApprovalRequest.id).limit(limit)
    return _views(session, stmt.offset(offset))
