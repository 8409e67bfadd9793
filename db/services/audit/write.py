"""History and audit rows, written in the caller's transaction beside the change."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from db.models import AuditEvent, LoanEvent, LoanEventKind
from db.services.access import Actor


class AuditAction(StrEnum):
    INVITE_CREATED = "invite_created"
    INVITE_REDEEMED = "invite_redeemed"
    INVITE_REFUSED = "invite_refused"
    ACCESS_REQUESTED = "access_requested"
    STAFF_APPROVED = "staff_approved"
    STAFF_REJECTED = "staff_rejected"
    STAFF_DISABLED = "staff_disabled"
    STAFF_ENABLED = "staff_enabled"
    ROLE_CHANGED = "role_changed"
    PASSWORD_SET = "password_set"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGIN_LOCKED = "login_locked"
    LOGOUT = "logout"
    LOAN_CREATED = "loan_created"
    LOAN_EDITED = "loan_edited"
    LOAN_REASSIGNED = "loan_reassigned"
    LOAN_CLOSED = "loan_closed"
    LOAN_WRITTEN_OFF = "loan_written_off"
    LOAN_DELETED = "loan_deleted"  # before issue 9: loans are archived now, never deleted
    LOAN_ARCHIVED = "loan_archived"
    LOAN_RESTORED = "loan_restored"
    PAYMENT_RECORDED = "payment_recorded"
    PAYMENT_REVERSED = "payment_reversed"
    PROMISE_RECORDED = "promise_recorded"
    CONTACT_RECORDED = "contact_recorded"
    REMINDER_REQUESTED = "reminder_requested"
    BROADCAST_CREATED = "broadcast_created"
    BROADCAST_CANCELED = "broadcast_canceled"
    SUPPRESSION_LIFTED = "suppression_lifted"
    EXPORT_MADE = "export_made"
    STATEMENT_MADE = "statement_made"
    STATEMENT_LINK_SENT = "statement_link_sent"
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_APPROVED = "approval_approved"
    APPROVAL_REJECTED = "approval_rejected"
    APPROVAL_WITHDRAWN = "approval_withdrawn"
    LOAN_DISPUTED = "loan_disputed"
    LOAN_PAUSED = "loan_paused"  # hardship, until a date
    HOLD_RESOLVED = "hold_resolved"
    PAYMENT_DENIED = "payment_denied"  # the borrower replied NO to a receipt
    API_KEY_CREATED = "api_key_created"
    API_KEY_REVOKED = "api_key_revoked"
    API_CALL = "api_call"  # a write through the JSON API (reads are counted per day instead)
    API_READS = "api_reads"  # one key's reads on one finished day
    # Not staff actions, but changes all the same: a borrower's SMS, the sample-data seeder.
    BORROWER_OPTED_OUT = "borrower_opted_out"
    BORROWER_OPTED_IN = "borrower_opted_in"
    SEED = "seed"


def _jsonable(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return {k: (v if isinstance(v, int | bool | None) else str(v)) for k, v in data.items()}


def audit(
    session: Session,
    *,
    actor: Actor | None,
    action: AuditAction,
    target_type: str | None = None,
    target_id: object = None,
    details: dict[str, Any] | None = None,
    telegram_user_id: int | None = None,
) -> AuditEvent:
    """Add an audit row to the session (the caller's transaction commits it with the change)."""
    row = AuditEvent(
        staff_id=actor.staff_id if actor else None,
        telegram_user_id=telegram_user_id,
        action=action.value,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=_jsonable(details),
    )
    session.add(row)
    return row


def loan_event(
    session: Session,
    *,
    loan_id: int,
    actor: Actor | None,
    kind: LoanEventKind,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str | None = None,
) -> LoanEvent:
    """Add a history row for a loan (Decimals and dates stored as strings)."""
    row = LoanEvent(
        loan_id=loan_id,
        staff_id=actor.staff_id if actor else None,
        kind=kind,
        before=_jsonable(before),
        after=_jsonable(after),
        note=note,
    )
    session.add(row)
    return row
