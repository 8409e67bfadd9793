"""Staff: access requests, approvals, roles and states, lookups.

Invites live in staff.invites, logging in and sessions in staff.sessions; both are
re-exported here, so callers import everything staff-related from this module. Read
sessions' docstring for how adapters must commit failed logins.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Role, Staff, StaffState
from db.services.access import Actor, require_reader, require_role
from db.services.audit.write import AuditAction, audit
from db.services.errors import AccessDenied, Conflict, InvalidInput, NotFound
from db.services.staff.invites import MAX_INVITE_HOURS as MAX_INVITE_HOURS
from db.services.staff.invites import (
    InviteCode,
    check_invite,
    create_invite,
    redeem_invite,
    upsert_staff,
)
from db.services.staff.invites import _claim as _claim  # tests drive the single-use UPDATE here
from db.services.staff.sessions import (
    LoginResult,
    StaffInfo,
    current_actor,
    end_sessions,
    load_staff,
    login,
    logout,
    set_password,
    staff_info,
)
from db.services.staff.sessions import as_actor as as_actor
from db.services.staff.sessions import open_session as open_session
from db.validation import name_key

__all__ = [
    "InviteCode",
    "LoginResult",
    "StaffInfo",
    "admins",
    "change_role",
    "check_invite",
    "create_invite",
    "current_actor",
    "decide_access",
    "find_staff",
    "get_staff",
    "get_staff_by_id",
    "list_requests",
    "list_staff",
    "login",
    "logout",
    "redeem_invite",
    "request_access",
    "set_password",
    "set_state",
]


def request_access(
    session: Session,
    *,
    telegram_user_id: int,
    chat_id: int | None,
    name: str,
    username: str | None,
) -> StaffInfo:
    """Ask admins for access: a pending row, the same one if asked again."""
    staff = load_staff(session, telegram_user_id, lock=True)
    if staff is not None and staff.state == StaffState.ACTIVE:
        raise Conflict("You are already staff here; log in instead.", code="already_staff")
    if staff is not None and staff.state in (StaffState.DISABLED, StaffState.REJECTED):
        raise AccessDenied(
            "You cannot request access again; ask an admin for an invite.",
            code=f"request_{staff.state.value}",
        )
    created = staff is None
    staff = upsert_staff(session, staff, telegram_user_id, chat_id, name, username)
    session.flush()
    if created:
        audit(
            session,
            actor=None,
            action=AuditAction.ACCESS_REQUESTED,
            target_type="staff",
            target_id=staff.id,
            telegram_user_id=telegram_user_id,
            details={"name": staff.name},
        )
        session.flush()
    return staff_info(staff)


def _target(session: Session, staff_id: int) -> Staff:
    staff = session.get(Staff, staff_id, with_for_update=True)
    if staff is None:
        raise NotFound(f"No staff member {staff_id}.", code="staff_not_found")
    return staff


def decide_access(
    session: Session, *, actor: Actor, staff_id: int, approve: bool, role: Role = Role.AGENT
) -> StaffInfo:
    """Approve (with role) or reject a pending access request."""
    require_role(actor, Role.ADMIN, "decide access requests")
    staff = _target(session, staff_id)
    if staff.state != StaffState.PENDING:
        raise Conflict(f"The request of {staff.name} was already decided.", code="decided")
    staff.state = StaffState.ACTIVE if approve else StaffState.REJECTED
    if approve:
        staff.role = role
    staff.decided_by_id = actor.staff_id
    action = AuditAction.STAFF_APPROVED if approve else AuditAction.STAFF_REJECTED
    audit(
        session,
        actor=actor,
        action=action,
        target_type="staff",
        target_id=staff.id,
        details={"role": role.value} if approve else None,
    )
    session.flush()
    return staff_info(staff)


def get_staff(session: Session, *, telegram_user_id: int) -> StaffInfo | None:
    """A staff member (any state) by Telegram user id."""
    staff = load_staff(session, telegram_user_id)
    return staff_info(staff) if staff else None


def get_staff_by_id(session: Session, *, staff_id: int) -> StaffInfo | None:
    """A staff member (any state) by id."""
    staff = session.get(Staff, staff_id)
    return staff_info(staff) if staff else None


def list_staff(session: Session, *, actor: Actor, include_pending: bool = False) -> list[StaffInfo]:
    """Admins: active and disabled staff (and pending if asked); managers: active staff."""
    require_reader(actor, Role.MANAGER, "list staff")
    if actor.may_read(Role.ADMIN):
        states = [StaffState.ACTIVE, StaffState.DISABLED]
        states += [StaffState.PENDING] if include_pending else []
    else:
        states = [StaffState.ACTIVE]
    rows = session.scalars(select(Staff).where(Staff.state.in_(states)).order_by(Staff.id))
    return [staff_info(s) for s in rows]


def list_requests(session: Session, *, actor: Actor) -> list[StaffInfo]:
    """Pending access requests, oldest first."""
    require_reader(actor, Role.ADMIN, "see access requests")
    rows = session.scalars(
        select(Staff).where(Staff.state == StaffState.PENDING).order_by(Staff.created_at, Staff.id)
    )
    return [staff_info(s) for s in rows]


def admins(session: Session) -> list[StaffInfo]:
    """Active admins (to tell about access requests)."""
    return [staff_info(s) for s in _active_admins(session)]


def _active_admins(session: Session, *, lock: bool = False) -> list[Staff]:
    stmt = select(Staff).where(Staff.role == Role.ADMIN, Staff.state == StaffState.ACTIVE)
    # Locking every admin row serialises two admins removing each other at the same time.
    stmt = stmt.order_by(Staff.id).with_for_update() if lock else stmt.order_by(Staff.id)
    return list(session.scalars(stmt))


def _keep_an_admin(session: Session, staff: Staff, what: str) -> None:
    if staff.role != Role.ADMIN or staff.state != StaffState.ACTIVE:
        return
    if [s.id for s in _active_admins(session, lock=True)] == [staff.id]:
        raise Conflict(
            f"{staff.name} is the last active admin and cannot be {what}.", code="last_admin"
        )


def _decided(session: Session, staff_id: int) -> Staff:
    """The staff row, locked; refused unless their access request was decided."""
    staff = _target(session, staff_id)
    if staff.state not in (StaffState.ACTIVE, StaffState.DISABLED):
        raise Conflict(
            f"{staff.name} has no decided account; decide the request instead.", code="not_decided"
        )
    return staff


def set_state(session: Session, *, actor: Actor, staff_id: int, enabled: bool) -> StaffInfo:
    """Enable or disable a staff member; disabling ends their sessions."""
    require_role(actor, Role.ADMIN, "enable or disable staff")
    staff = _decided(session, staff_id)
    if not enabled and staff.id == actor.staff_id:
        raise Conflict("You cannot disable yourself.", code="self")
    wanted = StaffState.ACTIVE if enabled else StaffState.DISABLED
    if staff.state == wanted:
        return staff_info(staff)
    if not enabled:
        _keep_an_admin(session, staff, "disabled")
        end_sessions(session, staff.id)
    staff.state = wanted
    action = AuditAction.STAFF_ENABLED if enabled else AuditAction.STAFF_DISABLED
    audit(session, actor=actor, action=action, target_type="staff", target_id=staff.id)
    session.flush()
    return staff_info(staff)


def change_role(session: Session, *, actor: Actor, staff_id: int, role: Role) -> StaffInfo:
    """Give a decided staff member another role; the last active admin keeps theirs."""
    require_role(actor, Role.ADMIN, "change roles")
    staff = _decided(session, staff_id)
    if staff.role == role:
        return staff_info(staff)
    if role != Role.ADMIN:
        _keep_an_admin(session, staff, "demoted")
    before, staff.role = staff.role, role
    audit(
        session,
        actor=actor,
        action=AuditAction.ROLE_CHANGED,
        target_type="staff",
        target_id=staff.id,
        details={"before": before.value, "after": role.value},
    )
    session.flush()
    return staff_info(staff)


def find_staff(session: Session, *, actor: Actor, text: str) -> StaffInfo:
    """An active staff member by id, @username, or the start of their name (any case)."""
    require_reader(actor, Role.MANAGER, "look up staff")
    query = staff_query(text)
    active = list(
        session.scalars(select(Staff).where(Staff.state == StaffState.ACTIVE).order_by(Staff.id))
    )
    return staff_info(pick_staff(active, query, missing=f"No active staff member matches {query}."))


def staff_query(text: str) -> str:
    """Lookup text with its spaces folded; InvalidInput when empty or too long."""
    query = " ".join((text or "").split())
    if not query or len(query) > 120:
        raise InvalidInput("Name a staff member: a number, @username or name.", code="staff_query")
    return query


def pick_staff(candidates: list[Staff], query: str, *, missing: str) -> Staff:
    """The one candidate query names; NotFound with missing, or InvalidInput when several."""
    matches = _match_staff(candidates, query)
    if not matches:
        raise NotFound(missing, code="staff_not_found")
    if len(matches) > 1:
        names = ", ".join(f"{s.name} ({s.id})" for s in matches[:5])
        raise InvalidInput(
            f"{query} matches several staff: {names}. Use the number.", code="staff_ambiguous"
        )
    return matches[0]


def _match_staff(active: list[Staff], query: str) -> list[Staff]:
    if query.isascii() and query.isdigit():
        return [s for s in active if s.id == int(query)]
    if query.startswith("@"):
        handle = query[1:].casefold()
        return [s for s in active if s.username and s.username.casefold() == handle]
    key = name_key(query)
    exact = [s for s in active if name_key(s.name) == key]
    # A full name wins over longer names it prefixes ("Ravi" vs "Ravi Kumar").
    return exact or [s for s in active if name_key(s.name).startswith(key)]
