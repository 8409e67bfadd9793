"""The reconciler: find out what happened to messages whose fate the dispatcher never learned.

A SENDING row is only ever resent after the provider's own list shows it never arrived;
a SENT row without a final status is asked about until POLL_FOR has passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db import clock
from db.config import Settings
from db.models import Message
from db.services.sms import outbox
from db.services.sms.outbox import EventSource, MessageInfo
from scheduler import twilio_codes
from scheduler.sms import ProviderMessage, SmsError, SmsSender

log = logging.getLogger(__name__)

T = TypeVar("T")
Factory = sessionmaker[Session]
# A provider's clock and ours differ a little: look for a lost send from a bit earlier.
CLOCK_SLACK = timedelta(minutes=1)
# A SENT message is asked about for this long, then its last status stands.
POLL_FOR = timedelta(days=3)


@dataclass(frozen=True)
class ReconcileReport:
    polled: int = 0
    updated: int = 0
    recovered: int = 0
    requeued: int = 0


def in_tx(factory: Factory, fn: Callable[..., T], **kwargs: Any) -> T:
    """Run one service call in its own short transaction."""
    with factory.begin() as session:
        return fn(session, **kwargs)


async def db_call(factory: Factory, fn: Callable[..., T], **kwargs: Any) -> T:
    """The same, on a thread, so sends carry on while the database is written."""
    return await asyncio.to_thread(partial(in_tx, factory, fn, **kwargs))


def stuck_after(settings: Settings) -> timedelta:
    """How long SENDING may last before reconcile steps in: the claim's lease (at least the
    time to send the batches in flight, so a busy live worker is not second-guessed)."""
    batch_seconds = settings.sms_batch_size / settings.sms_rate_per_second
    return timedelta(seconds=max(settings.sms_claim_seconds, 3 * batch_seconds))


def _known_sids(session: Session, *, sids: list[str]) -> set[str]:
    if not sids:
        return set()
    return set(session.scalars(select(Message.provider_sid).where(Message.provider_sid.in_(sids))))


async def find_lost_send(
    factory: Factory, sender: SmsSender, m: MessageInfo, since: datetime | None = None
) -> list[ProviderMessage] | None:
    """Provider messages to m's number created since it was claimed, with its body, not yet ours.

    Listed by creation, not DateSent: a message accepted but not yet sent counts as sent.
    """
    since = (since or m.sending_at or m.send_after) - CLOCK_SLACK
    try:
        listed = await sender.list_recent(to=m.to, since=since)
    except SmsError as exc:
        log.warning("could not list messages to check message %s: %s", m.id, exc.message)
        return None
    same = [p for p in listed if p.body is None or p.body == m.body]
    known = await db_call(factory, _known_sids, sids=[p.sid for p in same])
    fresh = [p for p in same if p.sid not in known]
    return sorted(fresh, key=lambda p: p.date_created or since)


async def adopt(factory: Factory, m: MessageInfo, found: ProviderMessage) -> bool:
    """The provider has m after all: record its SID and the status it reports."""
    ok = await db_call(
        factory,
        outbox.mark_sent,
        message_id=m.id,
        sid=found.sid,
        segments=None,
        source=EventSource.RECONCILE,
    )
    if ok:
        await db_call(
            factory,
            twilio_codes.apply_status,
            sid=found.sid,
            status=found.status,
            error_code=found.error_code,
            source=EventSource.POLL,
        )
    return ok


async def _recover(
    factory: Factory, sender: SmsSender, m: MessageInfo, *, older_than: datetime, settings: Settings
) -> str | None:
    """A SENDING row whose worker vanished: SENT if the provider has it, else QUEUED."""
    found = await find_lost_send(factory, sender, m)
    if found is None:
        return None
    if found:
        return "recovered" if await adopt(factory, m, found[0]) else None
    status = await db_call(
        factory,
        outbox.requeue_stuck,
        message_id=m.id,
        older_than=older_than,
        max_attempts=settings.sms_max_attempts,
    )
    return "requeued" if status is not None else None


async def _poll(factory: Factory, sender: SmsSender, m: MessageInfo) -> bool:
    """Ask the provider about a SENT message that never got a final report."""
    try:
        found = await sender.fetch(m.provider_sid or "")
    except SmsError as exc:
        log.warning("could not fetch %s: %s", m.provider_sid, exc.message)
        return False
    return await db_call(
        factory,
        twilio_codes.apply_status,
        sid=found.sid,
        status=found.status,
        error_code=found.error_code,
        source=EventSource.POLL,
    )


async def reconcile(
    session_factory: Factory, sender: SmsSender, *, settings: Settings, now: datetime | None = None
) -> ReconcileReport:
    """Settle SENDING messages whose claim ran out; poll SENT ones without a final status."""
    now = now or clock.utcnow()
    tally: Counter = Counter()
    # Unsettled claims first: they hold messages back; polls only refresh a status.
    older_than = now - stuck_after(settings)
    stuck = await db_call(session_factory, outbox.stuck_sending, older_than=older_than)
    # One at a time, oldest first: two stuck rows to one number must not take one SID.
    for m in stuck:
        outcome = await _recover(
            session_factory, sender, m, older_than=older_than, settings=settings
        )
        if outcome:
            tally[outcome] += 1
    quiet = await db_call(
        session_factory,
        outbox.sent_without_final,
        older_than=now - timedelta(hours=settings.reconcile_after_hours),
        sent_since=now - POLL_FOR,
    )
    for m in quiet:
        tally["polled"] += 1
        tally["updated"] += await _poll(session_factory, sender, m)
    report = ReconcileReport(**tally)
    if quiet or stuck:
        log.info("reconcile: %s", report)
    return report
