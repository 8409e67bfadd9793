"""Logging in and staying logged in: passwords, lockout, StaffSession rows, the command gate.

Failed attempts must outlive the refusal. Every AuthError raised here whose
``err.params.get("commit")`` is True has flushed rows that describe the refusal only
(failure counter, lock, audit row, an ended session); the adapter MUST commit the session
when it catches such an error, and roll back on every other ServiceError:

    except AuthError as err:
        session.commit() if err.params.get("commit") else session.rollback()

The functions are re-exported by db.services.staff.members, which is where callers import them from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db import clock
from db.models import Role, Staff, StaffSession, StaffState
from db.security import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    check_password_rules,
    hash_password,
    needs_rehash,
    verify_password,
)
from db.services.access import Actor
from db.services.audit.write import AuditAction, audit
from db.services.errors import AuthError, Conflict
from db.session import rows_matched

log = logging.getLogger(__name__)

# Writing last_seen_at on every command would double the writes of a busy bot.
_SEEN_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class StaffInfo:
    """A staff member as adapters see them (never the password hash)."""

    id: int
    telegram_user_id: int
    chat_id: int | None
    name: str
    username: str | None
    role: Role
    state: StaffState
    has_password: bool
    last_login_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class LoginResult:
    """Who logged in and the StaffSession opened for them."""

    staff: StaffInfo
    session_id: int


def staff_info(staff: Staff) -> StaffInfo:
    """The frozen view of a Staff row."""
    return StaffInfo(
        id=staff.id,
        telegram_user_id=staff.telegram_user_id,
        chat_id=staff.telegram_chat_id,
        name=staff.name,
        username=staff.username,
        role=staff.role,
        state=staff.state,
        has_password=staff.password_hash is not None,
        last_login_at=staff.last_login_at,
        created_at=staff.created_at,
    )


def as_actor(staff: Staff) -> Actor:
    """An Actor for audit rows about staff, whatever their state."""
    return Actor(staff_id=staff.id, role=staff.role, name=staff.name)


def load_staff(session: Session, telegram_user_id: int, *, lock: bool = False) -> Staff | None:
    """The Staff row of a Telegram user; lock=True holds it until commit (PostgreSQL)."""
    stmt = select(Staff).where(Staff.telegram_user_id == telegram_user_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def end_sessions(session: Session, staff_id: int) -> int:
    """End every open session of a staff member; return how many were open."""
    result = session.execute(
        update(StaffSession)
        .where(StaffSession.staff_id == staff_id, StaffSession.ended_at.is_(None))
        .values(ended_at=clock.utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return rows_matched(result)


def open_session(session: Session, staff: Staff) -> LoginResult:
    """Start a new session (ending older ones) and note the login time."""
    end_sessions(session, staff.id)
    now = clock.utcnow()
    row = StaffSession(staff_id=staff.id, started_at=now, last_seen_at=now)
    session.add(row)
    staff.last_login_at = now
    staff.failed_logins = 0
    staff.locked_until = None
    session.flush()
    return LoginResult(staff=staff_info(staff), session_id=row.id)


def open_audited_session(
    session: Session,
    staff: Staff,
    *,
    action: AuditAction,
    telegram_user_id: int,
    target: tuple[str, object] | None = None,
    details: dict[str, object] | None = None,
) -> LoginResult:
    """open_session, audited as action on target (by default the session it opened).

    A login, a first password and a redeemed invite each log the user in this way.
    """
    result = open_session(session, staff)
    target_type, target_id = target or ("staff_session", result.session_id)
    audit(
        session,
        actor=as_actor(staff),
        action=action,
        target_type=target_type,
        target_id=target_id,
        telegram_user_id=telegram_user_id,
        details=details,
    )
    session.flush()
    return result


def refuse_state(staff: Staff | None, *, need_password: bool = True) -> AuthError | None:
    """The AuthError for a user who may not log in or act, or None for usable staff."""
    if staff is None or staff.state == StaffState.REJECTED:
        return AuthError(
            "You are not staff here. Ask an admin for an invite, or request access.",
            code="not_staff",
        )
    if staff.state == StaffState.PENDING:
        return AuthError("Your access request is waiting for an admin.", code="pending")
    if staff.state == StaffState.DISABLED:
        return AuthError("Your account is disabled. Ask an admin.", code="disabled")
    if need_password and staff.password_hash is None:
        return AuthError("Choose a password first.", code="no_password")
    return None


def is_own_password(session: Session, *, telegram_user_id: int, text: str) -> bool:
    """Whether text is this staff member's password (read-only, audits nothing).

    For spotting a password typed where it does not belong; the caller limits how often
    it asks (each check costs a password hash).
    """
    if not MIN_PASSWORD <= len(text) <= MAX_PASSWORD:
        return False
    staff = load_staff(session, telegram_user_id)
    if staff is None or staff.password_hash is None:
        return False
    return verify_password(text, staff.password_hash)


def login(
    session: Session,
    *,
    telegram_user_id: int,
    password: str,
    max_failures: int = 5,
    lockout_minutes: int = 15,
) -> LoginResult:
    """Check the password and open a session; refusals raise AuthError with commit=True.

    Codes: not_staff, pending, disabled, no_password, locked (until, minutes_left),
    wrong_password (attempts_left). The max_failures-th wrong password in a row locks the
    account for lockout_minutes and raises "locked". While locked the password is not
    checked. Every attempt writes one audit row (LOGIN, LOGIN_FAILED or LOGIN_LOCKED);
    the caller must commit on AuthError with params["commit"] (see the module docstring).
    """
    staff = load_staff(session, telegram_user_id, lock=True)
    refusal = refuse_state(staff)
    if refusal is not None:
        who = as_actor(staff) if staff else None
        _fail(session, who, telegram_user_id, AuditAction.LOGIN_FAILED, refusal.code)
        raise _committing(refusal)
    assert staff is not None
    now = clock.utcnow()
    if staff.locked_until is not None and staff.locked_until > now:
        _fail(session, as_actor(staff), telegram_user_id, AuditAction.LOGIN_LOCKED, "locked")
        raise _locked(staff.locked_until, now)
    if staff.locked_until is not None:
        # The lock has run out: a fresh set of attempts.
        staff.locked_until, staff.failed_logins = None, 0
    if not verify_password(password, staff.password_hash):
        _wrong_password(session, staff, now, max_failures, lockout_minutes)
    if needs_rehash(staff.password_hash or ""):
        staff.password_hash = hash_password(password)
    return start_session(session, staff)


def start_session(
    session: Session, staff: Staff, *, details: dict[str, object] | None = None
) -> LoginResult:
    """Log staff in without a password check: open_session() and the LOGIN audit row.

    login() calls it once the password is right; the demo (db.sample.demo) for its staff.
    """
    return open_audited_session(
        session,
        staff,
        action=AuditAction.LOGIN,
        telegram_user_id=staff.telegram_user_id,
        details=details,
    )


def _wrong_password(
    session: Session, staff: Staff, now: datetime, max_failures: int, lockout_minutes: int
) -> None:
    staff.failed_logins = (staff.failed_logins or 0) + 1
    locks = staff.failed_logins >= max_failures
    if locks:
        staff.locked_until = now + timedelta(minutes=lockout_minutes)
        log.warning("staff %s locked out after %s failed logins", staff.id, staff.failed_logins)
    _fail(
        session,
        as_actor(staff),
        staff.telegram_user_id,
        AuditAction.LOGIN_FAILED,
        "wrong_password",
        failures=staff.failed_logins,
        locked=locks,
    )
    if locks:
        raise _locked(staff.locked_until, now)
    left = max_failures - staff.failed_logins
    raise AuthError(
        f"Wrong password. {left} attempt{'s' if left != 1 else ''} left before a lock.",
        code="wrong_password",
        attempts_left=left,
        commit=True,
    )


def _fail(
    session: Session,
    actor: Actor | None,
    telegram_user_id: int,
    action: AuditAction,
    reason: str | None,
    **details: object,
) -> None:
    audit(
        session,
        actor=actor,
        action=action,
        target_type="staff",
        target_id=actor.staff_id if actor else None,
        telegram_user_id=telegram_user_id,
        details={"reason": reason, **details},
    )
    session.flush()


def _locked(until: datetime | None, now: datetime) -> AuthError:
    assert until is not None
    minutes = max(1, -(-int((until - now).total_seconds()) // 60))
    return AuthError(
        f"Too many wrong passwords. Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
        code="locked",
        until=until,
        minutes_left=minutes,
        commit=True,
    )


def _committing(err: AuthError) -> AuthError:
    err.params["commit"] = True
    return err


def set_password(session: Session, *, telegram_user_id: int, password: str) -> LoginResult:
    """Give approved staff without a password their first one, and log them in."""
    staff = load_staff(session, telegram_user_id, lock=True)
    refusal = refuse_state(staff, need_password=False)
    if refusal is not None:
        raise refusal
    assert staff is not None
    if staff.password_hash is not None:
        raise Conflict("You already have a password; log in with it.", code="has_password")
    check_password_rules(password)
    staff.password_hash = hash_password(password)
    return open_audited_session(
        session,
        staff,
        action=AuditAction.PASSWORD_SET,
        telegram_user_id=telegram_user_id,
        target=("staff", staff.id),
    )


def current_actor(
    session: Session, *, telegram_user_id: int, idle_minutes: int = 120, max_hours: int = 168
) -> Actor:
    """The Actor behind a bot command, or AuthError saying why there is none.

    Codes: not_staff, pending, disabled, no_password, no_session, session_expired. An
    expired session is ended and the error carries commit=True (module docstring).
    """
    staff = load_staff(session, telegram_user_id)
    refusal = refuse_state(staff)
    if refusal is not None:
        raise refusal
    assert staff is not None
    open_row = session.scalars(
        select(StaffSession)
        .where(StaffSession.staff_id == staff.id, StaffSession.ended_at.is_(None))
        .order_by(StaffSession.started_at.desc(), StaffSession.id.desc())
        .limit(1)
    ).first()
    if open_row is None:
        raise AuthError("Please log in first.", code="no_session")
    now = clock.utcnow()
    idle = now - open_row.last_seen_at > timedelta(minutes=idle_minutes)
    if idle or now - open_row.started_at > timedelta(hours=max_hours):
        open_row.ended_at = now
        session.flush()
        raise AuthError(
            "Your session has ended. Please log in again.",
            code="session_expired",
            idle=idle,
            commit=True,
        )
    if now - open_row.last_seen_at >= _SEEN_EVERY:
        open_row.last_seen_at = now
        session.flush()
    return Actor.of(staff)


def logout(session: Session, *, telegram_user_id: int) -> None:
    """End the open session of a staff member (a no-op apart from the audit row if none)."""
    staff = load_staff(session, telegram_user_id)
    if staff is None:
        raise refuse_state(None) or AuthError("You are not staff here.", code="not_staff")
    ended = end_sessions(session, staff.id)
    audit(
        session,
        actor=as_actor(staff),
        action=AuditAction.LOGOUT,
        target_type="staff",
        target_id=staff.id,
        telegram_user_id=telegram_user_id,
        details={"ended": ended},
    )
    session.flush()
