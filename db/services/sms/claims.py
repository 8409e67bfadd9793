"""A worker's claim on a message: a lease, and writes fenced by it.

Claiming a message (outbox.claim_due) makes it SENDING with claimed_by = the worker,
attempts + 1 and sending_at = the claim time. The claim is a lease of SMS_CLAIM_SECONDS:
- the worker hands the message to the provider only in the first half of the lease
  (`may_send`), so a send never starts when another worker may already be settling it;
- once the lease is over, reconcile may settle the message (adopt what the provider has,
  else queue it again) and another worker may claim it, as attempt n + 1;
- a worker that was paused (SIGSTOP, a frozen VM, a long stall) and wakes up after that must
  not overwrite the newer attempt's outcome: its writes go through `fenced`, which applies
  them only while the row still carries its claim (worker id and attempt number).

What no fence can stop: a worker paused between its lease check and the provider call, and
resumed after another worker sent the message. Twilio has no idempotency key; the lease's
second half is the margin against that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Message, MessageStatus
from db.services.sms.outbox import EventSource, MessageInfo, event

T = TypeVar("T")
S = MessageStatus
# A send may start only in this share of the lease; the rest covers the call and its check.
SEND_WITHIN = 0.5


@dataclass(frozen=True)
class Claim:
    """Who holds a message, and for which attempt."""

    message_id: int
    worker_id: str
    attempt: int

    @classmethod
    def of(cls, message: MessageInfo, worker_id: str) -> Claim:
        return cls(message.id, worker_id[:64], message.attempts)


def may_send(message: MessageInfo, *, now: datetime, lease: timedelta) -> bool:
    """True while the claim is young enough for the message to be handed to the provider."""
    if message.sending_at is None:
        return False
    return now < message.sending_at + lease * SEND_WITHIN


def holds(session: Session, *, claim: Claim, or_queued: bool = False) -> bool:
    """Lock the row; True while it is SENDING under this claim (or QUEUED, when allowed).

    or_queued: for a "sent" result. The lease ran out and reconcile requeued the message,
    but nobody claimed it again: recording the SID now keeps it from going out twice.
    """
    stmt = select(Message).where(Message.id == claim.message_id).with_for_update()
    m = session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()
    if m is None:
        return False
    if or_queued and m.status == S.QUEUED:
        return True
    return m.status == S.SENDING and m.claimed_by == claim.worker_id and m.attempts == claim.attempt


def fenced(
    session: Session,
    *,
    claim: Claim,
    write: Callable[..., T],
    or_queued: bool = False,
    **kwargs: Any,
) -> T | None:
    """write(session, **kwargs) if claim still holds, else None and an "ignored" event."""
    if holds(session, claim=claim, or_queued=or_queued):
        return write(session, **kwargs)
    m = session.get(Message, claim.message_id)
    if m is not None:
        event(
            session,
            m.id,
            m.status,
            EventSource.WORKER,
            f"ignored: late result of attempt {claim.attempt} by {claim.worker_id}",
        )
    return None
