"""A broadcast's progress message: the admin's Telegram message the bot edits while the
broadcast goes, and what it shows (counts, then the final report with the failures).

Choices:
- progress_chat_id / progress_message_id name the admin's Telegram message the bot edits
  while a broadcast goes. They are cleared once the final report is shown (or the message
  can no longer be edited), so the bot's job reads only broadcasts it still reports on.
- No audit row: these columns say where a Telegram message is, not what staff did; the
  broadcast itself was audited when it was created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.config import Settings
from db.models import Broadcast, BroadcastState
from db.services.access import Actor
from db.services.broadcasts.audiences import Audience, audience_words
from db.services.broadcasts.compose import create_broadcast
from db.services.broadcasts.tracking import (
    Progress,
    broadcast_progress,
    failures_by_code,
    finish_done_broadcasts,
)
from db.services.errors import InvalidInput, NotFound
from db.session import rows_matched

MAX_TELEGRAM_ID = 2**63 - 1
TRACKED_BATCH = 20  # progress messages read per run of the bot's job


@dataclass(frozen=True)
class Tracked:
    """A broadcast whose progress message the bot still has to edit."""

    broadcast_id: int
    chat_id: int
    message_id: int
    state: BroadcastState
    audience: str  # in words, an agent by name
    created_at: datetime


def _check_id(value: int, what: str, *, signed: bool = False) -> int:
    low = -MAX_TELEGRAM_ID if signed else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_TELEGRAM_ID:
        raise InvalidInput(f"That is not a valid {what}.", code="telegram_id")
    return value


def set_progress_message(
    session: Session, *, broadcast_id: int, chat_id: int, message_id: int
) -> None:
    """Point the broadcast at the Telegram message that shows its progress."""
    values = {
        "progress_chat_id": _check_id(chat_id, "chat id", signed=True),
        "progress_message_id": _check_id(message_id, "message id"),
    }
    result = session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id)
        .values(**values)
        .execution_options(synchronize_session="fetch")
    )
    if not rows_matched(result):
        raise NotFound(f"No broadcast #{broadcast_id}.", code="broadcast_not_found")


def clear_progress_message(session: Session, *, broadcast_id: int) -> bool:
    """Stop tracking the broadcast's progress message; False when nothing was tracked."""
    result = session.execute(
        update(Broadcast)
        .where(Broadcast.id == broadcast_id, Broadcast.progress_message_id.is_not(None))
        .values(progress_chat_id=None, progress_message_id=None)
        .execution_options(synchronize_session="fetch")
    )
    return bool(rows_matched(result))


def tracked_broadcasts(
    session: Session, *, limit: int = 20, broadcast_id: int | None = None
) -> list[Tracked]:
    """Broadcasts with a progress message to edit, oldest first (or just broadcast_id)."""
    if not 1 <= limit <= 200:
        raise InvalidInput("limit must be between 1 and 200.", code="limit")
    stmt = select(Broadcast).where(
        Broadcast.progress_chat_id.is_not(None), Broadcast.progress_message_id.is_not(None)
    )
    if broadcast_id is not None:
        stmt = stmt.where(Broadcast.id == broadcast_id)
    tracked = []
    for b in session.scalars(stmt.order_by(Broadcast.id).limit(limit)):
        chat_id, message_id = b.progress_chat_id, b.progress_message_id
        if chat_id is None or message_id is None:  # left out by the WHERE above
            continue
        words = audience_words(session, Audience.from_json(b.audience))
        tracked.append(
            Tracked(b.id, chat_id, message_id, BroadcastState(b.state), words, b.created_at)
        )
    return tracked


@dataclass(frozen=True)
class ProgressReport:
    """What a progress message shows: the broadcast, its counts, and failures once done."""

    tracked: Tracked
    progress: Progress
    failures: list[tuple[str | None, int, str]] = field(default_factory=list)


def progress_reports(
    session: Session, *, broadcast_id: int | None = None, limit: int = TRACKED_BATCH
) -> list[ProgressReport]:
    """Finish the done broadcasts, then each tracked one's counts (failures when done)."""
    finish_done_broadcasts(session)
    found = []
    for t in tracked_broadcasts(session, limit=limit, broadcast_id=broadcast_id):
        progress = broadcast_progress(session, broadcast_id=t.broadcast_id)
        failures = []
        if progress.done:
            failures = failures_by_code(session, broadcast_id=t.broadcast_id)
        found.append(ProgressReport(t, progress, failures))
    return found


def start_broadcast(
    session: Session,
    *,
    actor: Actor,
    audience: Audience,
    template: str,
    today: date,
    settings: Settings,
    chat_id: int,
    message_id: int,
) -> ProgressReport:
    """Queue the broadcast and point it at its progress message, in the caller's transaction."""
    info = create_broadcast(
        session,
        actor=actor,
        audience=audience,
        template=template,
        today=today,
        settings=settings,
    )
    set_progress_message(session, broadcast_id=info.id, chat_id=chat_id, message_id=message_id)
    return progress_reports(session, broadcast_id=info.id)[0]
