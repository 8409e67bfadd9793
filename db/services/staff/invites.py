"""Invites: create, check and redeem single-use codes; and the staff row a Telegram user joins with.

upsert_staff is shared with access requests (db.services.staff.members), the other way to join.
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
from db.services.audit.write import AuditAction, audit
from db.services.errors import AccessDenied, AuthError, Conflict, InvalidInput
from db.services.staff.sessions import LoginResult, load_staff, open_audited_session
from db.session import rows_matched

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
    row = Invite(
        code_hash=hash_code(code),
        role=role,
        expires_at=expires_at,
        created_by_id=actor.staff_id if actor else None,
    )
    session.add(row)
    session.flush()
    audit(
        session,
        actor=actor,
        action=AuditAction.INVITE_CREATED,
        target_type="invite",
        target_id=row.id,
        details={"role": role.value, "expires_at": expires_at},
    )
    session.flush()
    return InviteCode(invite_id=row.id, code=code, role=role, expires_at=expires_at)


def _find_invite(session: Session, code: str | None, code_hash: str | None = None) -> Invite:
    code = (code or "").strip()
    if code and 0 < len(code) <= MAX_CODE and _CODE.fullmatch(code):
        code_hash = hash_code(code)
    elif code:
        code_hash = None
    row = None
    if code_hash:
        row = session.scalars(select(Invite).where(Invite.code_hash == code_hash)).first()
    if row is None:
        raise AuthError("That invite code is not valid.", code="invite_invalid")
    if row.used_at is not None:
        raise AuthError("That invite code has already been used.", code="invite_used")
    if row.expires_at <= clock.utcnow():
        raise AuthError("That invite code has expired; ask for a new one.", code="invite_expired")
    return row


def check_invite(session: Session, *, code: str) -> Role:
    """The role an invite code would give; AuthError invite_invalid/used/expired otherwise."""
    return _find_invite(session, code).role


def redeem_invite(
    session: Session,
    *,
    code: str | None = None,
    telegram_user_id: int,
    chat_id: int | None,
    name: str,
    username: str | None,
    password: str,
    code_hash: str | None = None,
) -> LoginResult:
    """Make the Telegram user active staff with the invite's role and password; log them in.

    The invite is given by its code, or by hash_code(code) (what a caller that must keep
    it a while stores instead of the code). A refused code is audited and raised with
    commit=True (see db.services.staff.sessions).
    """
    check_password_rules(password)
    try:
        invite = _find_invite(session, code, code_hash)
    except AuthError as err:
        audit(
            session,
            actor=None,
            action=AuditAction.INVITE_REFUSED,
            target_type="invite",
            telegram_user_id=telegram_user_id,
            details={"reason": err.code},
        )
        session.flush()
        err.params["commit"] = True
        raise
    staff = load_staff(session, telegram_user_id, lock=True)
    if staff is not None and staff.state == StaffState.ACTIVE:
        raise Conflict("You are already staff here; log in instead.", code="already_staff")
    if staff is not None and staff.state == StaffState.DISABLED:
        raise AccessDenied("Your account is disabled; an admin must enable it.", code="disabled")
    _claim(session, invite)
    staff = upsert_staff(session, staff, telegram_user_id, chat_id, name, username)
    staff.role, staff.state = invite.role, StaffState.ACTIVE
    staff.password_hash = hash_password(password)
    staff.decided_by_id = invite.created_by_id
    session.flush()
    invite.used_by_id = staff.id
    return open_audited_session(
        session,
        staff,
        action=AuditAction.INVITE_REDEEMED,
        telegram_user_id=telegram_user_id,
        target=("invite", invite.id),
        details={"role": invite.role.value},
    )


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
    if rows_matched(result) != 1:
        raise AuthError("That invite code has already been used.", code="invite_used")


def _display_name(name: str | None, username: str | None, telegram_user_id: int) -> str:
    # Telegram names are profile data, not typed answers: tidy them rather than refuse.
    text = " ".join(
        "".join(
            ch for ch in (name or "") if unicodedata.category(ch) not in ("Cc", "Cf", "Co", "Cs")
        ).split()
    )[:120].strip()
    if len(text) >= 2 and any(ch.isalpha() for ch in text):
        return text
    return f"@{username}" if username else f"User {telegram_user_id}"


def _clean_username(username: str | None) -> str | None:
    text = (username or "").strip().lstrip("@")
    return text[:64] if text and re.fullmatch(r"\w+", text) else None


def upsert_staff(
    session: Session,
    staff: Staff | None,
    telegram_user_id: int,
    chat_id: int | None,
    name: str | None,
    username: str | None,
) -> Staff:
    """The user's staff row (a new PENDING agent when none), name and chat refreshed."""
    username = _clean_username(username)
    if staff is None:
        staff = Staff(
            telegram_user_id=telegram_user_id,
            role=Role.AGENT,
            state=StaffState.PENDING,
            failed_logins=0,
        )
        session.add(staff)
    staff.name = _display_name(name, username, telegram_user_id)
    staff.username = username
    staff.telegram_chat_id = chat_id if chat_id is not None else staff.telegram_chat_id
    return staff
