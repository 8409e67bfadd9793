"""Staff: invites, access requests, approvals, roles and states, lookups.

Logging in and sessions live in db.services.sessions and are re-exported here, so callers
import everything staff-related from this module. Read that module's docstring for how
adapters must commit failed logins.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db import clock
from db.models import Invite, Role, Staff, StaffState
from db.security import MAX_CODE, check_password_rules, hash_code, hash_password, new_invite_code
from db.services.access import Actor, require_role
from db.services.audit import AuditAction, audit
from db.services.errors import AccessDenied, AuthError, Conflict, InvalidInput, NotFound
from db.services.sessions import (
    LoginResult,
    StaffInfo,
    as_actor,
    current_actor,
    end_sessions,
    load_staff,
    login,
    logout,
    open_session,
    set_password,
    staff_info,
)
from db.validation import name_key

__all__ = [
    "InviteCode", "LoginResult", "StaffInfo", "admins", "change_role", "check_invite",
    "create_invite", "current_actor", "decide_access", "find_staff", "get_staff",
    "get_staff_by_id", "list_requests", "list_staff", "login", "logout", "redeem_invite",
    "request_access", "set_password", "set_state",
]

MAX_INVITE_HOURS = 24 * 30
_CODE = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class InviteCode:
    """A new invite; code is shown once and never stored."""

    invite_id: int
    code: str
    role: Role
    expires_at: datetime


def create_invite(
    session: Session, *, actor: Actor | None, role: Role, valid_hours: int = 72
) -> InviteCode:
    """A single-use invite for role; actor None is the command line (a trusted operator)."""
    if actor is not None:
        require_role(actor, Role.ADMIN, "invite staff")
    if not 1 <= valid_hours <= MAX_INVITE_HOURS:
        raise InvalidInput(
            f"An invite can be valid for 1 to {MAX_INVITE_HOURS} hours.", code="invite_hours"
        )
    code = new_invite_code()
    expires_at = clock.utcnow() + timedelta(hours=valid_hours)
    row = Invite(code_hash=hash_code(code), role=role, expires_at=expires_at,
                 created_by_id=actor.staff_id if actor else None)
    session.add(row)
    session.flush()
    audit(session, actor=actor, action=AuditAction.INVITE_CREATED, target_type="invite",
          target_id=row.id, details={"role": role.value, "expires_at": expires_at})
    session.flush()
    return InviteCode(invite_id=row.id, code=code, role=role, expires_at=expires_at)


def _find_invite(session: Session, code: str) -> Invite:
    code = (code or "").strip()
    row = None
    if 0 < len(code) <= MAX_CODE and _CODE.fullmatch(code):
        row = session.scalars(select(Invite).where(Invite.code_hash == hash_code(code))).first()
    if row is None:
        raise AuthError("That invite code is not valid.", code="invite_invalid")
    if row.used_at is not None:
        raise AuthError("That invite code has already been used.", code="invite_used")
    if row.expires_at <= clock.utcnow():
        raise AuthError("That invite code has expired; ask for a new one.",
                        code="invite_expired")
    return row


def check_invite(session: Session, *, code: str) -> Role:
    """The role an invite code would give; AuthError invite_invalid/used/expired otherwise."""
    return _find_invite(session, code).role


def redeem_invite(
    session: Session, *, code: str, telegram_user_id: int, chat_id: int | None, name: str,
    username: str | None, password: str,
) -> LoginResult:
    """Make the Telegram user active staff with the invite's role and password; log them in.

    A refused code is audited and raised with commit=True (see db.services.sessions).
    """
    check_password_rules(password)
    try:
        invite = _find_invite(session, code)
    except AuthError as err:
        audit(session, actor=None, action=AuditAction.INVITE_REFUSED, target_type="invite",
              telegram_user_id=telegram_user_id, details={"reason": err.code})
        session.flush()
        err.params["commit"] = True
        raise
    staff = load_staff(session, telegram_user_id, lock=True)
    if staff is not None and staff.state == StaffState.ACTIVE:
        raise Conflict("You are already staff here; log in instead.", code="already_staff")
    if staff is not None and staff.state == StaffState.DISABLED:
        raise AccessDenied("Your account is disabled; an admin must enable it.",
                           code="disabled")
    _claim(session, invite)
    staff = _upsert_staff(session, staff, telegram_user_id, chat_id, name, username)
    staff.role, staff.state = invite.role, StaffState.ACTIVE
    staff.password_hash = hash_password(password)
    staff.decided_by_id = invite.created_by_id
    session.flush()
    invite.used_by_id = staff.id
    result = open_session(session, staff)
    audit(session, actor=as_actor(staff), action=AuditAction.INVITE_REDEEMED,
          target_type="invite", target_id=invite.id, telegram_user_id=telegram_user_id,
          details={"role": invite.role.value})
    session.flush()
    return result


def _claim(session: Session, invite: Invite) -> None:
    # The conditional UPDATE is the single-use guarantee: of two concurrent redeems only
    # one sees used_at still NULL (PostgreSQL re-checks the row after the other commits).
    now = clock.utcnow()
    result = session.execute(
        update(Invite)
        .where(Invite.id == invite.id, Invite.used_at.is_(None), Invite.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount != 1:
        raise AuthError("That invite code has already been used.", code="invite_used")


def _display_name(name: str | None, username: str | None, telegram_user_id: int) -> str:
    # Telegram names are profile data, not typed answers: tidy them rather than refuse.
    text = " ".join("".join(
        ch for ch in (name or "") if unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs")
    ).split())[:120].strip()
    if len(text) >= 2 and any(ch.isalpha() for ch in text):
        return text
    return f"@{username}" if username else f"User {telegram_user_id}"


def _clean_username(username: str | None) -> str | None:
    text = (username or "").strip().lstrip("@")
    return text[:64] if text and re.fullmatch(r"\w+", text) else None


def _upsert_staff(
    session: Session, staff: Staff | None, telegram_user_id: int, chat_id: int | None,
    name: str | None, username: str | None,
) -> Staff:
    username = _clean_username(username)
    if staff is None:
        staff = Staff(telegram_user_id=telegram_user_id, role=Role.AGENT,
                      state=StaffState.PENDING, failed_logins=0)
        session.add(staff)
    staff.name = _display_name(name, username, telegram_user_id)
    staff.username = username
    staff.telegram_chat_id = chat_id if chat_id is not None else staff.telegram_chat_id
    return staff


def request_access(
    session: Session, *, telegram_user_id: int, chat_id: int | None, name: str,
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
    staff = _upsert_staff(session, staff, telegram_user_id, chat_id, name, username)
    session.flush()
    if created:
        audit(session, actor=None, action=AuditAction.ACCESS_REQUESTED, target_type="staff",
              target_id=staff.id, telegram_user_id=telegram_user_id,
              details={"name": staff.name})
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
    audit(session, actor=actor, action=action, target_type="staff", target_id=staff.id,
          details={"role": role.value} if approve else None)
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
    require_role(actor, Role.MANAGER, "list staff")
    if actor.role == Role.ADMIN:
        states = [StaffState.ACTIVE, StaffState.DISABLED]
        states += [StaffState.PENDING] if include_pending else []
    else:
        states = [StaffState.ACTIVE]
    rows = session.scalars(select(Staff).where(Staff.state.in_(states)).order_by(Staff.id))
    return [staff_info(s) for s in rows]


def list_requests(session: Session, *, actor: Actor) -> list[StaffInfo]:
    """Pending access requests, oldest first."""
    require_role(actor, Role.ADMIN, "see access requests")
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
        raise Conflict(f"{staff.name} is the last active admin and cannot be {what}.",
                       code="last_admin")


def set_state(session: Session, *, actor: Actor, staff_id: int, enabled: bool) -> StaffInfo:
    """Enable or disable a staff member; disabling ends their sessions."""
    require_role(actor, Role.ADMIN, "enable or disable staff")
    staff = _target(session, staff_id)
    if staff.state not in (StaffState.ACTIVE, StaffState.DISABLED):
        raise Conflict(f"{staff.name} has no decided account; decide the request instead.",
                       code="not_decided")
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
    staff = _target(session, staff_id)
    if staff.state not in (StaffState.ACTIVE, StaffState.DISABLED):
        raise Conflict(f"{staff.name} has no decided account; decide the request instead.",
                       code="not_decided")
    if staff.role == role:
        return staff_info(staff)
    if role != Role.ADMIN:
        _keep_an_admin(session, staff, "demoted")
    before, staff.role = staff.role, role
    audit(session, actor=actor, action=AuditAction.ROLE_CHANGED, target_type="staff",
          target_id=staff.id, details={"before": before.value, "after": role.value})
    session.flush()
    return staff_info(staff)


def find_staff(session: Session, *, actor: Actor, text: str) -> StaffInfo:
    """An active staff member by id, @username, or the start of their name (any case)."""
    require_role(actor, Role.MANAGER, "look up staff")
    query = " ".join((text or "").split())
    if not query or len(query) > 120:
        raise InvalidInput("Name a staff member: a number, @username or name.",
                           code="staff_query")
    active = list(session.scalars(
        select(Staff).where(Staff.state == StaffState.ACTIVE).order_by(Staff.id)
    ))
    matches = _match_staff(active, query)
    if not matches:
        raise NotFound(f"No active staff member matches {query}.", code="staff_not_found")
    if len(matches) > 1:
        names = ", ".join(f"{s.name} ({s.id})" for s in matches[:5])
        raise InvalidInput(f"{query} matches several staff: {names}. Use the number.",
                           code="staff_ambiguous")
    return staff_info(matches[0])


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
