"""Who may open the dashboards (the Telegram Mini App): managers and admins with a live session.

The Mini App has no password of its own: Telegram vouches for the user (initData, checked
by the adapter), and the staff member's bot session (db.services.staff.sessions) must be
live, so logging out of the bot, an expired session or a disabled account also closes the
dashboards. The page's own short session names the bot session it was opened in, and dies
with it: a cookie made before a logout never works again, even after the next login.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Role, StaffSession
from db.services.access import Actor
from db.services.errors import AccessDenied, AuthError
from db.services.staff.sessions import current_actor

# Roles that read the dashboards (finance reads them and changes nothing).
DASHBOARD_ROLES = frozenset({Role.MANAGER, Role.ADMIN, Role.FINANCE})


@dataclass(frozen=True)
class AppLogin:
    """The staff member behind a Mini App request and the bot session it belongs to."""

    actor: Actor
    telegram_user_id: int
    session_id: int


def dashboard_login(
    session: Session,
    *,
    telegram_user_id: int,
    idle_minutes: int,
    max_hours: int,
    session_id: int | None = None,
) -> AppLogin:
    """The dashboard reader behind a Telegram user, or AuthError / AccessDenied.

    session_id, when given, must be the bot session still open (a page session of an ended
    bot session is refused with code session_ended). AuthError with params["commit"] has
    flushed an ended session: the caller commits (see db.services.staff.sessions).
    """
    actor = current_actor(
        session, telegram_user_id=telegram_user_id, idle_minutes=idle_minutes, max_hours=max_hours
    )
    open_id = session.scalar(
        select(StaffSession.id)
        .where(StaffSession.staff_id == actor.staff_id, StaffSession.ended_at.is_(None))
        .order_by(StaffSession.started_at.desc(), StaffSession.id.desc())
        .limit(1)
    )
    if open_id is None or (session_id is not None and open_id != session_id):
        raise AuthError("Your session has ended. Please log in again.", code="session_ended")
    if actor.role not in DASHBOARD_ROLES:
        raise AccessDenied("The dashboards are for managers and admins.", code="role")
    return AppLogin(actor=actor, telegram_user_id=telegram_user_id, session_id=open_id)
