"""A broadcast after it is queued: its info, progress and failures; cancel, list, finish."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from db import clock
from db.models import Broadcast, BroadcastState, Message, Role
from db.models import MessageStatus as S
from db.services.access import Actor, require_role
from db.services.audit.write import AuditAction, audit
from db.services.broadcasts.audiences import Audience, audience_words
from db.services.errors import Conflict, NotFound
from db.services.sms.deliveries import FailureLine, failure_counts
from db.services.sms.outbox import cancel_broadcast_messages
from db.session import rows_matched

# A SENT message with no carrier report for this long no longer keeps a broadcast open.
SENT_SETTLES = timedelta(hours=24)


@dataclass(frozen=True)
class BroadcastInfo:
    id: int
    created_by_id: int | None
    audience: Audience
    template: str
    state: BroadcastState
    recipients: int
    suppressed: int
    created_at: datetime
    canceled_at: datetime | None
    finished_at: datetime | None
    progress_chat_id: int | None
    progress_message_id: int | None

    @classmethod
    def of(cls, b: Broadcast) -> BroadcastInfo:
        return cls(
            b.id,
            b.created_by_id,
            Audience.from_json(b.audience),
            b.template,
            BroadcastState(b.state),
            b.recipients,
            b.suppressed,
            b.created_at,
            b.canceled_at,
            b.finished_at,
            b.progress_chat_id,
            b.progress_message_id,
        )


@dataclass(frozen=True)
class Progress:
    broadcast_id: int
    counts: dict[str, int]  # every MessageStatus value -> count
    total: int
    done: bool


def _get(session: Session, broadcast_id: int, *, lock: bool = False) -> Broadcast:
    stmt = select(Broadcast).where(Broadcast.id == broadcast_id)
    b = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if b is None:
        raise NotFound(f"No broadcast #{broadcast_id}.", code="broadcast_not_found")
    return b


def _in_flight(session: Session, broadcast_id: int) -> int:
    stmt = select(func.count()).where(
        Message.broadcast_id == broadcast_id, Message.status == S.SENDING
    )
    return session.scalar(stmt) or 0


def cancel_broadcast(session: Session, *, actor: Actor, broadcast_id: int) -> BroadcastInfo:
    """Stop the still-queued messages; those in flight end canceled if they come back."""
    require_role(actor, Role.ADMIN, "cancel a broadcast")
    b = _get(session, broadcast_id, lock=True)
    if b.state != BroadcastState.QUEUED:
        raise Conflict(f"Broadcast #{b.id} is already {b.state}.", code="broadcast_state")
    canceled = cancel_broadcast_messages(session, broadcast_id=b.id)
    # Messages in flight count as left to cancel: any that come back for a retry or a
    # deferral end CANCELED (outbox), so the cancel still stops them.
    if not canceled and not _in_flight(session, b.id):
        raise Conflict(
            f"Broadcast #{b.id} has nothing left to cancel: every message has gone.",
            code="broadcast_state",
        )
    b.state, b.canceled_at = BroadcastState.CANCELED, clock.utcnow()
    audit(
        session,
        actor=actor,
        action=AuditAction.BROADCAST_CANCELED,
        target_type="broadcast",
        target_id=b.id,
        details={"canceled": canceled},
    )
    session.flush()
    return BroadcastInfo.of(b)


def broadcast_progress(
    session: Session, *, broadcast_id: int, now: datetime | None = None
) -> Progress:
    """Messages by status; done when none wait to go and every sent one is settled or old."""
    _get(session, broadcast_id)
    rows = session.execute(
        select(Message.status, func.count(), func.max(Message.sent_at))
        .where(Message.broadcast_id == broadcast_id)
        .group_by(Message.status)
    ).all()
    counts = {s.value: 0 for s in S} | {S(s).value: int(n) for s, n, _ in rows}
    last_sent = max((at for s, _, at in rows if s == S.SENT and at), default=None)
    settled = last_sent is None or last_sent < (now or clock.utcnow()) - SENT_SETTLES
    done = not counts[S.QUEUED] and not counts[S.SENDING] and settled
    return Progress(broadcast_id, counts, sum(counts.values()), done)


def failures_by_code(session: Session, *, broadcast_id: int) -> list[tuple[str | None, int, str]]:
    """(provider's code, count, plain words) of the broadcast's failed and undelivered
    messages, by the worker's reason."""
    lines: list[FailureLine] = failure_counts(session, Message.broadcast_id == broadcast_id)
    return [(f.code, f.count, f.words) for f in lines]


def list_broadcasts(session: Session, *, actor: Actor, limit: int = 10) -> list[BroadcastInfo]:
    """The latest broadcasts, newest first."""
    require_role(actor, Role.ADMIN, "list broadcasts")
    stmt = select(Broadcast).order_by(Broadcast.created_at.desc(), Broadcast.id.desc())
    return [BroadcastInfo.of(b) for b in session.scalars(stmt.limit(max(1, min(limit, 50))))]


def finish_done_broadcasts(session: Session) -> int:
    """Mark DONE the queued broadcasts with nothing queued or sending; returns how many."""
    waiting = exists().where(
        Message.broadcast_id == Broadcast.id, Message.status.in_((S.QUEUED, S.SENDING))
    )
    result = session.execute(
        update(Broadcast)
        .where(Broadcast.state == BroadcastState.QUEUED, ~waiting)
        .values(state=BroadcastState.DONE, finished_at=clock.utcnow())
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)


@dataclass(frozen=True)
class BroadcastLine:
    """One line of the broadcasts list: the broadcast, its counts, its audience in words."""

    info: BroadcastInfo
    progress: Progress
    audience: str


def broadcast_lines(session: Session, *, actor: Actor, limit: int = 10) -> list[BroadcastLine]:
    """The latest broadcasts with their counts and audiences in words, newest first."""
    return [
        BroadcastLine(
            info,
            broadcast_progress(session, broadcast_id=info.id),
            audience_words(session, info.audience),
        )
        for info in list_broadcasts(session, actor=actor, limit=limit)
    ]


def cancel_and_count(session: Session, *, actor: Actor, broadcast_id: int) -> int:
    """Cancel the broadcast; how many of its messages are canceled now."""
    cancel_broadcast(session, actor=actor, broadcast_id=broadcast_id)
    return broadcast_progress(session, broadcast_id=broadcast_id).counts["canceled"]
