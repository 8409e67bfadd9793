"""The staff commands: `invite` (a one-time code) and `staff list`."""

from __future__ import annotations

import argparse
from datetime import datetime

from sqlalchemy import select

from cli.database import OK, up_to_date_session
from db.config import Settings
from db.models import Role, Staff


def invite(args: argparse.Namespace, settings: Settings) -> int:
    from db.services.staff.members import create_invite

    hours = args.hours or settings.invite_valid_hours
    with up_to_date_session(settings) as session:
        made = create_invite(session, actor=None, role=Role(args.role), valid_hours=hours)
        session.commit()
    until = made.expires_at.astimezone(settings.tz)
    print(
        f"Invite for a new {made.role.value}: single use, valid until "
        f"{until:%Y-%m-%d %H:%M} {settings.agency_timezone} ({hours} hours)."
    )
    username = (settings.telegram_bot_username or "").strip().lstrip("@")
    if username:
        print(f"Open in Telegram: https://t.me/{username}?start={made.code}")
    else:
        print("Send the bot /start followed by this code (set TELEGRAM_BOT_USERNAME for a link):")
    print(made.code)
    return OK


def _when(moment: datetime | None, settings: Settings) -> str:
    return f"{moment.astimezone(settings.tz):%Y-%m-%d %H:%M}" if moment else "never"


def staff_list(args: argparse.Namespace, settings: Settings) -> int:
    with up_to_date_session(settings) as session:
        staff = session.scalars(select(Staff).order_by(Staff.id)).all()
    if not staff:
        print("No staff yet: make the first admin with `vasooli invite --role admin`.")
        return OK
    rows = [("id", "name", "role", "state", "telegram id", "last login")] + [
        (
            str(s.id),
            s.name,
            s.role.value,
            s.state.value,
            str(s.telegram_user_id),
            _when(s.last_login_at, settings),
        )
        for s in staff
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return OK
