"""Approve or reject a request: the first decision wins, approving applies the change.

Two approvers pressing at once: each runs UPDATE approval_request SET state = ... WHERE id
= :id AND state = 'pending'. On PostgreSQL the second waits for the first's row lock and
then finds the row no longer pending (0 rows): it is told who decided. On SQLite writers
are serialised, with the same result. Approving applies the change through its kind's
handler in the same transaction; when the handler refuses (the loan was closed meanwhile),
the refusal propagates and the adapter's rollback undoes the decision too: nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import update
from sqlalchemy.orm import Session

from db import clock
from db.models import ApprovalRequest, ApprovalState
from db.services.access import Actor, check_approver
from db.services.approvals.kinds import HANDLERS
from db.services.approvals.requests import ApprovalView, already_decided, get_request
from db.services.audit.write import AuditAction, audit
from db.services.errors import Conflict, InvalidInput, NotFound
from db.session import rows_matched
from db.validation import clean_text


@dataclass(frozen=True)
class Decision:
    approval: ApprovalView
    approved: bool


def _reason(reason: str | None, approve: bool) -> str | None:
    why = clean_text(reason, field="reason", max_len=300, required=False)
    if not approve and (why is None or len(why) < 3):
        raise InvalidInput("Give a reason of at least 3 characters.", code="reason_short")
    return why


def check_decidable(session: Session, *, actor: Actor, approval_id: int) -> ApprovalView:
    """The request if actor may decide it now (before asking a reason to reject it)."""
    row = session.get(ApprovalRequest, approval_id)
    if row is None:
        raise NotFound(f"No request #{approval_id} found.", code="approval_not_found")
    check_approver(actor, least=row.approver_role, requested_by_id=row.requested_by_id)
    if row.state is not ApprovalState.PENDING:
        raise already_decided(session, approval_id)
    return get_request(session, approval_id=approval_id)


def decide(
    session: Session,
    *,
    actor: Actor,
    approval_id: int,
    approve: bool,
    reason: str | None = None,
    today: date,
) -> Decision:
    """Approve (applying the change) or reject (a reason required) a pending request."""
    row = session.get(ApprovalRequest, approval_id)
    if row is None:
        raise NotFound(f"No request #{approval_id} found.", code="approval_not_found")
    check_approver(actor, least=row.approver_role, requested_by_id=row.requested_by_id)
    why = _reason(reason, approve)
    state = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
    won = rows_matched(
        session.execute(
            update(ApprovalRequest)
            .where(
                ApprovalRequest.id == approval_id, ApprovalRequest.state == ApprovalState.PENDING
            )
            .values(
                state=state, decided_by_id=actor.staff_id, decided_at=clock.utcnow(), reason=why
            )
            .execution_options(synchronize_session=False)
        )
    )
    if not won:
        raise already_decided(session, approval_id)
    session.refresh(row)
    if approve:
        handler = HANDLERS.get(row.kind)
        if handler is None:  # a kind asked for before its handler exists (new loans, for now)
            raise Conflict(
                f"Requests of kind {row.kind.value} cannot be approved yet.",
                code="approval_kind_unsupported",
            )
        handler.apply(session, actor, row, today)
    action = AuditAction.APPROVAL_APPROVED if approve else AuditAction.APPROVAL_REJECTED
    audit(
        session,
        actor=actor,
        action=action,
        target_type="approval",
        target_id=approval_id,
        details={"kind": row.kind, "loan_id": row.loan_id, "reason": why},
    )
    session.flush()
    return Decision(get_request(session, approval_id=approval_id), approve)
