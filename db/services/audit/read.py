"""Reading the audit log (admins only): the latest events, optionally of one staff member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEvent, Role, Staff
from db.services.access import Actor, require_reader
from db.services.staff.members import pick_staff, staff_query

MAX_LIMIT = 100


@dataclass(frozen=True)
class AuditEntry:
    """One audit event as adapters show it."""

    id: int
    created_at: datetime
    staff_id: int | None
    staff_name: str | None
    telegram_user_id: int | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any] | None


@dataclass(frozen=True)
class StaffRef:
    """Whose events were asked for."""

    id: int
    name: str


def recent_audit(
    session: Session, *, actor: Actor, staff_id: int | None = None, limit: int = 20
) -> list[AuditEntry]:
    """The latest limit audit events, newest first; only staff_id's when given."""
    require_reader(actor, Role.ADMIN, "read the audit log")
    limit = max(1, min(limit, MAX_LIMIT))
    stmt = (
        select(AuditEvent, Staff.name)
        .outerjoin(Staff, Staff.id == AuditEvent.staff_id)
        .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    if staff_id is not None:
        stmt = stmt.where(AuditEvent.staff_id == staff_id)
    return [
        AuditEntry(
            id=row.id,
            created_at=row.created_at,
            staff_id=row.staff_id,
            staff_name=name,
            telegram_user_id=row.telegram_user_id,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            details=row.details,
        )
        for row, name in session.execute(stmt)
    ]


def find_audited_staff(session: Session, *, actor: Actor, text: str) -> StaffRef:
    """Any staff member, in any state (the log outlives them): by id, @username or name start."""
    require_reader(actor, Role.ADMIN, "read the audit log")
    query = staff_query(text)
    everyone = list(session.scalars(select(Staff).order_by(Staff.id)))
    found = pick_staff(everyone, query, missing=f"No staff member matches {query}.")
    return StaffRef(id=found.id, name=found.name)
