"""May this message go out now? Expiry, opt-out, suppression, quiet hours, frequency cap.

Choices (docs/architecture.md: "inside the allowed hours of their own time zone, no more often than
the frequency cap, and never after STOP"):
- Opt-out and the suppression list stop every kind, replies included: the carrier would
  refuse them anyway (21610), and a STOP must be final.
- Replies (answers to a borrower's own HELP / BAL text) are exempt from quiet hours and
  the cap: the borrower just wrote, at a time of their choosing.
- Reminders, broadcasts and notices wait for the allowed hours in the borrower's zone.
- Only reminders count toward, and are held back by, the frequency cap; a broadcast or a
  payment notice is not a reminder and does not use up the borrower's reminder budget.
- A message that would wait past its expiry is suppressed instead (a reminder about
  Monday's due date is wrong by Thursday).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from db.config import Settings
from db.models import Borrower, Message, MessageKind, MessageStatus, Suppression
from db.services.sms.outbox import MessageInfo
from db.sms_window import next_window, zone
from db.sms_window import window_start as window_start  # scheduler.jobs imports it here

# Statuses that mean "this reminder reached, or is reaching, the borrower".
_COUNTED = (MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.DELIVERED)


class DecisionKind(StrEnum):
    SEND = "send"
    WAIT = "wait"
    SUPPRESS = "suppress"


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    until: datetime | None = None
    reason: str = ""


SEND = Decision(DecisionKind.SEND)


def _borrower(session: Session, message: MessageInfo) -> Borrower | None:
    if message.borrower_id is not None:
        return session.get(Borrower, message.borrower_id)
    return session.scalars(select(Borrower).where(Borrower.phone == message.to)).first()


def _wait_or_expire(message: MessageInfo, until: datetime, reason: str, late: str) -> Decision:
    """WAIT until a time, or SUPPRESS with reason late when that is past the expiry."""
    if message.expires_at is not None and until >= message.expires_at:
        return Decision(DecisionKind.SUPPRESS, None, late)
    return Decision(DecisionKind.WAIT, until, reason)


def _cap_frees_at(
    session: Session, message: MessageInfo, now: datetime, settings: Settings
) -> datetime | None:
    """None when the borrower is under the reminder cap, else when a slot frees up."""
    since = now - timedelta(days=settings.sms_frequency_days)
    at = func.coalesce(Message.sent_at, Message.sending_at)
    # A reminder still SENDING counts only when older (lower id) than this one, so a batch
    # holding several reminders for one borrower lets the first ones through.
    stmt = (
        select(at)
        .where(
            Message.borrower_id == message.borrower_id,
            Message.kind == MessageKind.REMINDER,
            Message.id != message.id,
            Message.status.in_(_COUNTED),
            or_(Message.status != MessageStatus.SENDING, Message.id < message.id),
            at >= since,
        )
        .order_by(at.desc())
        .limit(settings.sms_frequency_cap)
    )
    times = list(session.scalars(stmt))
    if len(times) < settings.sms_frequency_cap:
        return None
    return times[-1] + timedelta(days=settings.sms_frequency_days)


def decide(
    session: Session, *, message: MessageInfo, now: datetime, settings: Settings
) -> Decision:
    """SEND, WAIT until a time, or SUPPRESS with a reason (see the module's choices)."""
    if message.expires_at is not None and now >= message.expires_at:
        return Decision(DecisionKind.SUPPRESS, None, "expired")
    borrower = _borrower(session, message)
    if borrower is not None and borrower.opted_out_at is not None:
        return Decision(DecisionKind.SUPPRESS, None, "opted out")
    blocked = session.get(Suppression, message.to)
    if blocked is not None:
        return Decision(DecisionKind.SUPPRESS, None, f"suppressed: {blocked.reason}")
    if message.kind is MessageKind.REPLY:
        return SEND
    tz = zone(borrower.timezone if borrower else None, settings.agency_timezone)
    opens = next_window(now, tz, settings.allowed_window)
    if opens is not None:
        return _wait_or_expire(message, opens, "quiet hours", "expired in quiet hours")
    if message.kind is MessageKind.REMINDER and message.borrower_id is not None:
        frees = _cap_frees_at(session, message, now, settings)
        if frees is not None:
            return _wait_or_expire(message, frees, "frequency cap", "expired under frequency cap")
    return SEND
