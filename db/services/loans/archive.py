"""Archiving a loan instead of deleting it, and restoring it (issue 9 item 8).

An archived loan keeps every row (installments, payments, allocations, promises, contacts,
history); it is left out of lists, searches, reminders, reports and the daily job, and only
admins can open its card and history or restore it. The messages queued for it are withdrawn
in the same transaction: a reminder about a loan that is gone from the book must not leave.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from db import clock
from db.models import Loan, LoanEventKind, Role
from db.services.access import Actor, require_role
from db.services.audit.write import AuditAction, audit, loan_event
from db.services.collection import ledger
from db.services.errors import Conflict, InvalidInput
from db.services.loans.guards import find_loan, refuse_stale
from db.services.sms.truth import WithdrawReason, withdraw_for_loan
from db.validation import clean_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveResult:
    loan_id: int
    loan_number: str
    archived_at: datetime | None
    reason: str | None
    withdrawn: int


def _reason(reason: str) -> str:
    why = clean_text(reason, field="reason", max_len=300)
    if why is None or len(why) < 3:
        raise InvalidInput("Give a reason of at least 3 characters.", code="reason_short")
    return why


def _record(
    session: Session,
    actor: Actor,
    loan: Loan,
    kind: LoanEventKind,
    action: AuditAction,
    why: str,
    details: dict[str, Any],
) -> None:
    loan_event(session, loan_id=loan.id, actor=actor, kind=kind, note=why, after=details)
    audit(
        session,
        actor=actor,
        action=action,
        target_type="loan",
        target_id=loan.id,
        details={"loan_number": loan.loan_number, "reason": why, **details},
    )
    session.flush()


def archive_loan(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    reason: str,
    expected_version: int | None = None,
) -> ArchiveResult:
    """Archive a loan (admins, as deleting was): hidden everywhere, every row kept."""
    require_role(actor, Role.ADMIN, "archive loans")
    why = _reason(reason)
    loan = find_loan(session, actor=actor, loan_number=loan_number, lock=True)  # not archived
    refuse_stale(loan, expected_version)
    loan.archived_at, loan.archived_by_id, loan.archive_reason = clock.utcnow(), actor.staff_id, why
    ledger.touch(loan, actor)
    withdrawn = len(withdraw_for_loan(session, loan=loan, reason=WithdrawReason.ARCHIVED))
    _record(
        session,
        actor,
        loan,
        LoanEventKind.ARCHIVED,
        AuditAction.LOAN_ARCHIVED,
        why,
        {
            "state": loan.state.value,
            "outstanding": loan.outstanding,
            "borrower": loan.borrower.name,
            "withdrawn": withdrawn,
        },
    )
    log.info("loan %s archived by staff %s", loan.loan_number, actor.staff_id)
    return ArchiveResult(loan.id, loan.loan_number, loan.archived_at, why, withdrawn)


def restore_loan(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    reason: str,
) -> ArchiveResult:
    """Bring an archived loan back into the book (admins only)."""
    require_role(actor, Role.ADMIN, "restore loans")
    why = _reason(reason)
    loan = find_loan(session, actor=actor, loan_number=loan_number, lock=True, archived=True)
    if loan.archived_at is None:
        raise Conflict(f"Loan {loan.loan_number} is not archived.", code="not_archived")
    before = {"archived_at": loan.archived_at, "archive_reason": loan.archive_reason}
    loan.archived_at = loan.archived_by_id = loan.archive_reason = None
    ledger.touch(loan, actor)
    _record(
        session,
        actor,
        loan,
        LoanEventKind.RESTORED,
        AuditAction.LOAN_RESTORED,
        why,
        {f"{k}_before": v for k, v in before.items()},
    )
    log.info("loan %s restored by staff %s", loan.loan_number, actor.staff_id)
    return ArchiveResult(loan.id, loan.loan_number, None, None, 0)
