"""The bot's repeating jobs: borrowers' SMS passed to their agents, broadcast progress edits.

The worker and the web app write the database; these jobs read it (the bot and the worker
never call each other). Choices:
- Relay: each SMS is sent to the loan's current agent with a button to the loan's card,
  and marked relayed right after its send succeeded (a crash in between relays it twice:
  better than never). Network trouble is retried on the next run, uncounted. A refusal
  (bot blocked, chat not found) is retried with a doubling pause; after
  MAX_RELAY_FAILURES refusals it is marked relayed anyway and logged, so stuck rows do not
  hold up newer ones (its text stays on the loan's history). Counts live in memory: a
  restart gives every message its tries again. A reply whose agent is not logged in is
  held (db/services/sms/relays.py) and sent by deliver_held as soon as they log in.
- Progress: a broadcast's progress message is edited at most once per EDIT_GAP seconds and
  only when its text changed (Telegram refuses "message is not modified" and limits edit
  rates). Once the broadcast is done the final report replaces it and tracking stops; a
  message whose edits are refused (deleted, bot blocked) for EDIT_GIVE_UP seconds on end
  is no longer tracked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application

from bot import keyboards, texts
from bot.context import Context, agency_of, db, settings_of
from db.models import BroadcastState
from db.money import format_money
from db.services.broadcasts.progress_message import (
    ProgressReport,
    Tracked,
    clear_progress_message,
    progress_reports,
)
from db.services.collection.receipts import DeniedPayment
from db.services.sms import inbound
from db.services.sms.relays import RelayInfo, relay_batch

log = logging.getLogger(__name__)

RELAY_EVERY = 5.0  # seconds
PROGRESS_EVERY = 3.0
EDIT_GAP = 3.0  # at most one edit of a message in this many seconds
RELAY_BATCH = 100
MAX_RELAY_FAILURES = 8
EDIT_GIVE_UP = 600.0  # seconds of refused edits before a message is dropped
RELAYS = "jobs.relays"  # bot_data (never persisted): inbound id -> _Tries
RELAY_LOCK = "jobs.relay_lock"  # bot_data: one relay batch at a time
EDITS = "jobs.edits"  # bot_data: broadcast id -> _Edit
_JOB_KWARGS = {"max_instances": 1, "coalesce": True}


def schedule(app: Application) -> None:
    """Add the relay and progress jobs to app's JobQueue (they start with the app)."""
    if app.job_queue is None:
        log.warning("no JobQueue (python-telegram-bot[job-queue] missing): no SMS relay")
        return
    app.job_queue.run_repeating(
        relay_job, interval=RELAY_EVERY, first=1.0, name="sms_relay", job_kwargs=_JOB_KWARGS
    )
    app.job_queue.run_repeating(
        progress_job,
        interval=PROGRESS_EVERY,
        first=1.0,
        name="broadcast_progress",
        job_kwargs=_JOB_KWARGS,
    )


# --- relay --------------------------------------------------------------------------------


@dataclass
class _Tries:
    failures: int = 0
    next_at: float = 0.0


def _relay_lock(context: Context) -> asyncio.Lock:
    # The job and a login's deliver_held must not both send the same reply.
    return context.bot_data.setdefault(RELAY_LOCK, asyncio.Lock())


async def relay_job(context: Context) -> None:
    """Send every deliverable borrower SMS to its agent; mark each relayed once sent."""
    async with _relay_lock(context):
        await _relay_batch(context, None)


async def deliver_held(context: Context, staff_id: int) -> None:
    """At a login: the replies held for this staff member while they were away, now."""
    async with _relay_lock(context):
        await _relay_batch(context, staff_id)


async def _relay_batch(context: Context, staff_id: int | None) -> None:
    settings = settings_of(context)
    # Only replies whose recipient is logged in: the others are held (db/services/sms/relays.py).
    waiting = await db(
        context,
        relay_batch,
        limit=RELAY_BATCH,
        staff_id=staff_id,
        idle_minutes=settings.session_idle_minutes,
        max_hours=settings.session_max_hours,
    )
    relays, loans = waiting.relays, waiting.loan_ids
    tries: dict[int, _Tries] = context.bot_data.setdefault(RELAYS, {})
    refused_chats: set[int] = set()
    now = time.monotonic()
    for relay in relays:
        state = tries.setdefault(relay.inbound_id, _Tries())
        if relay.agent_chat_id in refused_chats or state.next_at > now:
            continue
        text = _relay_text(context, relay, waiting.denied.get(relay.inbound_id))
        if await _relay_one(context, relay, loans.get(relay.inbound_id), state, text):
            tries.pop(relay.inbound_id, None)
            await db(context, inbound.mark_relayed, inbound_ids=[relay.inbound_id])
        elif state.failures >= MAX_RELAY_FAILURES:
            log.warning(
                "gave up relaying SMS %s to chat %s after %s refusals",
                relay.inbound_id,
                relay.agent_chat_id,
                state.failures,
            )
            tries.pop(relay.inbound_id, None)
            await db(context, inbound.mark_relayed, inbound_ids=[relay.inbound_id])
        elif state.failures:
            refused_chats.add(relay.agent_chat_id)
    if staff_id is not None:
        return  # a partial batch: the other rows' tries are not this run's to forget
    # Forget rows relayed elsewhere (or given up on) so the table does not grow.
    pending = {r.inbound_id for r in relays}
    for inbound_id in [i for i in tries if i not in pending]:
        tries.pop(inbound_id)


def _relay_text(context: Context, relay: RelayInfo, denied: DeniedPayment | None) -> str:
    """The borrower's SMS as relayed; a NO to a receipt with the payment it denies."""
    if not relay.denied or denied is None:
        return texts.relay_text(relay.borrower_name, relay.loan_number, relay.body)
    agency = agency_of(context)
    return texts.denial_text(
        relay.borrower_name,
        relay.loan_number,
        relay.body,
        receipt=denied.receipt,
        amount=format_money(denied.amount, agency),
        paid_at=texts.local_time(denied.paid_at, agency.zone),
        recorded_by=denied.recorded_by,
        agent=denied.agent,
    )


async def _relay_one(
    context: Context, relay: RelayInfo, loan_id: int | None, state: _Tries, text: str
) -> bool:
    """Send one SMS to its recipient; True when sent. A refusal counts towards giving up."""
    markup = keyboards.relay_card(loan_id, texts.RELAY_BTN_CARD) if loan_id else None
    try:
        await context.bot.send_message(relay.agent_chat_id, text, reply_markup=markup)
        return True
    except (Forbidden, BadRequest) as exc:
        state.failures += 1
        state.next_at = time.monotonic() + RELAY_EVERY * 2 ** (state.failures - 1)
        log.warning(
            "could not relay SMS %s to chat %s (%s of %s): %s",
            relay.inbound_id,
            relay.agent_chat_id,
            state.failures,
            MAX_RELAY_FAILURES,
            exc,
        )
    except TelegramError as exc:
        log.info("relay of SMS %s waits for the network: %s", relay.inbound_id, exc)
    return False


# --- broadcast progress -----------------------------------------------------------------


@dataclass
class _Edit:
    text: str = ""
    at: float = 0.0
    failing_since: float | None = None


def render(report: ProgressReport) -> str:
    """The progress message's text, or the final report once the broadcast is done."""
    t, p = report.tracked, report.progress
    canceled = t.state is BroadcastState.CANCELED
    if p.done:
        return texts.bc_final(
            t.broadcast_id, t.audience, canceled, p.counts, p.total, report.failures
        )
    state = texts.BC_STATES[t.state.value]
    if t.state is BroadcastState.DONE:
        state = texts.BC_WAITING_REPORTS
    return texts.bc_progress(t.broadcast_id, t.audience, state, p.counts, p.total)


def note_edit(context: Context, broadcast_id: int, text: str) -> None:
    """Record that the progress message now shows text (the job then waits EDIT_GAP)."""
    edits: dict[int, _Edit] = context.bot_data.setdefault(EDITS, {})
    edits[broadcast_id] = _Edit(text=text, at=time.monotonic())


async def progress_job(context: Context) -> None:
    """Edit each tracked broadcast's progress message; the final report ends the tracking."""
    edits: dict[int, _Edit] = context.bot_data.setdefault(EDITS, {})
    found = await db(context, progress_reports)
    for gone in set(edits) - {r.tracked.broadcast_id for r in found}:
        edits.pop(gone)  # no longer tracked (reported, or cleared elsewhere)
    for report in found:
        bid = report.tracked.broadcast_id
        memo = edits.setdefault(bid, _Edit())
        text = render(report)
        if text != memo.text and time.monotonic() - memo.at < EDIT_GAP:
            continue
        if text != memo.text and not await _edit(context, report.tracked, text, memo):
            if memo.failing_since is None or time.monotonic() - memo.failing_since < EDIT_GIVE_UP:
                continue
            log.warning("stopped tracking broadcast %s: its message cannot be edited", bid)
        elif not report.progress.done:
            continue
        await db(context, clear_progress_message, broadcast_id=bid)
        edits.pop(bid, None)


async def _edit(context: Context, tracked: Tracked, text: str, memo: _Edit) -> bool:
    """Edit the progress message; True when it shows text now."""
    try:
        await context.bot.edit_message_text(
            text, chat_id=tracked.chat_id, message_id=tracked.message_id
        )
    except BadRequest as exc:
        if "not modified" not in exc.message.lower():
            return _failed(memo, tracked, exc)
    except Forbidden as exc:
        return _failed(memo, tracked, exc)
    except TelegramError as exc:
        log.info("progress of broadcast %s waits for the network: %s", tracked.broadcast_id, exc)
        return False
    memo.text, memo.at, memo.failing_since = text, time.monotonic(), None
    return True


def _failed(memo: _Edit, tracked: Tracked, exc: TelegramError) -> bool:
    first = memo.failing_since is None
    if first:
        memo.failing_since = time.monotonic()
    # Said once per spell of failures: the job retries every few seconds.
    log.log(
        logging.WARNING if first else logging.DEBUG,
        "could not edit the progress of broadcast %s: %s",
        tracked.broadcast_id,
        exc,
    )
    return False
