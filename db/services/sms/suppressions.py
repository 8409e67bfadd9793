"""Suppressed numbers: how a failure suppresses one, and how a suppression is lifted.

Choices:
- A permanent failure (wrong number, landline, blocked) suppresses at once. A temporary
  one (handset off, out of coverage) only counts: the number is suppressed after
  StreakRule.limit of them in a row within StreakRule.days; a delivered SMS resets the count.
- The borrower's START lifts an "unreachable" or "opt_out" suppression: they have just
  shown, from that number, that it takes SMS and that they want them. It does not lift a
  "permanent" one: a number that was dead or a landline may now belong to someone else,
  and texting a stranger about a debt is a disclosure, so an admin decides.
- An admin lifts "permanent" and "unreachable" suppressions, never "opt_out": only the
  borrower can undo their own STOP.
- Every lift leaves a suppression_lift row (what it was, who, why) and an audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db import clock
from db.failures import Failure, FailureClass, StreakRule
from db.models import Base, Borrower, Role, Suppression, SuppressionKind, SuppressionLift
from db.models import UnreachableStreak as Streak
from db.services.access import Actor, require_role
from db.services.audit.write import AuditAction, audit
from db.services.errors import Conflict, NotFound

K = SuppressionKind
LIST_LIMIT = 50
VIA_START, VIA_ADMIN = "start", "admin"


@dataclass(frozen=True)
class SuppressionInfo:
    phone: str
    kind: SuppressionKind
    reason: str
    error_code: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Suppression) -> SuppressionInfo:
        return cls(row.phone, SuppressionKind(row.kind), row.reason, row.error_code, row.created_at)


@dataclass(frozen=True)
class LiftInfo:
    phone: str
    kind: SuppressionKind
    suppressed_reason: str
    via: str
    lifted_by_id: int | None
    reason: str | None
    lifted_at: datetime


def _insert(session: Session, table: type[Base]) -> postgresql.Insert | sqlite.Insert:
    name = session.get_bind().dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def suppress(
    session: Session, *, phone: str, kind: SuppressionKind, reason: str, error_code: str | None
) -> None:
    """Stop texting this number (the first suppression's reason stands)."""
    stmt = _insert(session, Suppression).values(
        phone=phone,
        kind=kind,
        reason=reason[:120],
        error_code=error_code,
        created_at=clock.utcnow(),
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["phone"]))


def _count_temporary(session: Session, *, phone: str, failure: Failure, rule: StreakRule) -> int:
    """One more temporary failure in the number's streak (a new streak after rule.days)."""
    now = clock.utcnow()
    # Insert-or-nothing, then lock: two reports for one number at once count twice, not fail.
    new = _insert(session, Streak).values(phone=phone, failures=0, first_at=now, last_at=now)
    session.execute(new.on_conflict_do_nothing(index_elements=["phone"]))
    row = session.execute(
        select(Streak)
        .where(Streak.phone == phone)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if row.first_at < now - timedelta(days=rule.days):
        row.failures, row.first_at = 0, now
    row.failures, row.last_at, row.last_code = row.failures + 1, now, failure.code
    session.flush()
    return row.failures


def record_failure(
    session: Session, *, phone: str, failure: Failure, rule: StreakRule, has_borrower: bool
) -> None:
    """What one failure means for the number (see the module's choices)."""
    if failure.kind is FailureClass.PERMANENT:
        suppress(
            session, phone=phone, kind=K.PERMANENT, reason=failure.words, error_code=failure.code
        )
    elif failure.kind is FailureClass.OPT_OUT and not has_borrower:
        # A borrower's opt-out lives on the borrower; a number nobody has is suppressed.
        suppress(
            session, phone=phone, kind=K.OPT_OUT, reason=failure.words, error_code=failure.code
        )
    elif failure.kind is FailureClass.TEMPORARY:
        count = _count_temporary(session, phone=phone, failure=failure, rule=rule)
        if count >= rule.limit:
            why = f"{failure.words}, {count} times in a row"
            suppress(session, phone=phone, kind=K.UNREACHABLE, reason=why, error_code=failure.code)


def delivered(session: Session, *, phone: str) -> None:
    """A delivered SMS: the number's streak of temporary failures starts again."""
    session.execute(delete(Streak).where(Streak.phone == phone))


def _lift(
    session: Session, row: Suppression, *, via: str, actor: Actor | None, reason: str | None
) -> LiftInfo:
    lift = SuppressionLift(
        phone=row.phone,
        kind=row.kind,
        suppressed_reason=row.reason,
        error_code=row.error_code,
        suppressed_at=row.created_at,
        via=via,
        lifted_by_id=actor.staff_id if actor else None,
        reason=reason[:200] if reason else None,
        lifted_at=clock.utcnow(),
    )
    session.add(lift)
    session.delete(row)
    session.execute(delete(Streak).where(Streak.phone == row.phone))
    details = {
        "phone": row.phone,
        "kind": row.kind,
        "via": via,
        "was": row.reason,
        "reason": reason,
    }
    audit(
        session,
        actor=actor,
        action=AuditAction.SUPPRESSION_LIFTED,
        target_type="phone",
        target_id=row.phone,
        details=details,
    )
    session.flush()
    return LiftInfo(
        lift.phone,
        SuppressionKind(lift.kind),
        lift.suppressed_reason,
        via,
        lift.lifted_by_id,
        lift.reason,
        lift.lifted_at,
    )


def _locked(session: Session, phone: str) -> Suppression | None:
    stmt = select(Suppression).where(Suppression.phone == phone).with_for_update()
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def lift_by_start(session: Session, *, phone: str) -> LiftInfo | None:
    """The borrower texted START: lift an unreachable or opt-out suppression (None: none)."""
    row = _locked(session, phone)
    if row is None or row.kind == K.PERMANENT:
        return None
    return _lift(session, row, via=VIA_START, actor=None, reason="the borrower texted START")


def _not_suppressed(phone: str) -> NotFound:
    return NotFound(f"{phone} is not suppressed.", code="not_suppressed")


def lift(session: Session, *, actor: Actor, phone: str, reason: str | None = None) -> LiftInfo:
    """An admin lifts a suppression (not an opt-out: only the borrower's START does)."""
    require_role(actor, Role.ADMIN, "lift suppressions")
    row = _locked(session, phone)
    if row is None:
        raise _not_suppressed(phone)
    if row.kind == K.OPT_OUT:
        raise Conflict(
            f"{phone} opted out; only the borrower can undo that by texting START.",
            code="opted_out",
        )
    return _lift(session, row, via=VIA_ADMIN, actor=actor, reason=reason)


def get_suppression(session: Session, *, actor: Actor, phone: str) -> SuppressionInfo:
    """One suppressed number, for admins; NotFound when it is not suppressed."""
    require_role(actor, Role.ADMIN, "lift suppressions")
    row = session.get(Suppression, phone)
    if row is None:
        raise _not_suppressed(phone)
    return SuppressionInfo.of(row)


def list_suppressed(
    session: Session, *, actor: Actor, limit: int = LIST_LIMIT
) -> list[SuppressionInfo]:
    """The most recently suppressed numbers, newest first (admins)."""
    require_role(actor, Role.ADMIN, "read delivery reports")
    stmt = select(Suppression).order_by(Suppression.created_at.desc(), Suppression.phone)
    return [SuppressionInfo.of(r) for r in session.scalars(stmt.limit(limit))]


def lift_history(session: Session, *, phone: str) -> list[LiftInfo]:
    """Every lift of this number's suppressions, oldest first."""
    stmt = select(SuppressionLift).where(SuppressionLift.phone == phone)
    rows = session.scalars(stmt.order_by(SuppressionLift.lifted_at, SuppressionLift.id))
    return [
        LiftInfo(
            r.phone,
            SuppressionKind(r.kind),
            r.suppressed_reason,
            r.via,
            r.lifted_by_id,
            r.reason,
            r.lifted_at,
        )
        for r in rows
    ]


def borrower_has(session: Session, phone: str) -> bool:
    return session.scalar(select(Borrower.id).where(Borrower.phone == phone).limit(1)) is not None
