"""The outbox dispatcher: send what is due and record each message's fate.

A crash of the worker sends nothing twice and drops nothing: a message is committed as
SENDING before the provider is called, and a SENDING row is only ever resent after the
provider's own list shows it never arrived (scheduler.reconcile). Better one message late
than two. A worker told to stop puts back what it claimed but has not handed over yet.

Throughput: the next batch is claimed while the last one sends (two at most), so the rate
limiter is the only pacing; results are written in groups, one transaction per 50 ms.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from aiolimiter import AsyncLimiter
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import clock
from db.config import Settings
from db.models import Borrower, MessageStatus
from db.services.sms import claims, outbox
from db.services.sms import truth as message_truth
from db.services.sms.claims import Claim
from db.services.sms.outbox import ClaimedMessage, EventSource, MessageInfo
from scheduler import policy, twilio_codes
from scheduler.reconcile import (
    Factory,
    ReconcileReport,
    adopt,
    db_call,
    find_lost_send,
    in_tx,
    reconcile,
    stuck_after,
)
from scheduler.sms import (
    AccountSmsError,
    PermanentSmsError,
    RetryableSmsError,
    SendResult,
    SmsError,
    SmsSender,
)

# Re-exported: callers imported these from here before they moved to scheduler.reconcile.
__all__ = [
    "DispatchReport",
    "ReconcileReport",
    "dispatch_due",
    "make_limiter",
    "reconcile",
    "stuck_after",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
# Back-off ceiling, and floor so a retry never lands inside the run that failed it.
MAX_BACKOFF_SECONDS = 3600.0
MIN_BACKOFF_SECONDS = 1.0
MAX_IN_FLIGHT = 32
# Batches claimed ahead: the next is claimed while one sends, so the limiter never idles.
BATCHES_IN_FLIGHT = 2
# A refused account (wrong token) holds messages this long before they are tried again.
ACCOUNT_PAUSE = timedelta(minutes=5)
# Twilio's "Too Many Requests": the request was refused, so a retry need not ask first.
RATE_LIMITED_CODE = "20429"
# Send results are written together, one transaction per this many seconds.
GROUP_SECONDS = 0.05


@dataclass(frozen=True)
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    deferred: int = 0
    unknown: int = 0
    released: int = 0  # claimed, then put back unsent because the worker was stopping
    held: int = 0  # put back because the provider refused our account (credentials)
    canceled: int = 0  # no longer true at send time (db.services.sms.truth)


def make_limiter(rate_per_second: float) -> AsyncLimiter:
    """At most rate_per_second sends a second (a rate below 1 means one every 1/rate s)."""
    if rate_per_second >= 1:
        return AsyncLimiter(rate_per_second, 1.0)
    return AsyncLimiter(1, 1.0 / rate_per_second)


def backoff(attempts: int, settings: Settings, retry_after: float | None = None) -> float:
    """Seconds before the next try: full jitter over base * 2**(attempts-1), capped."""
    ceiling = min(MAX_BACKOFF_SECONDS, settings.sms_retry_base_seconds * 2 ** max(attempts - 1, 0))
    delay = random.uniform(0, ceiling)
    return max(delay, retry_after or 0.0, MIN_BACKOFF_SECONDS)


def status_callback_url(settings: Settings) -> str | None:
    """Where Twilio reports a message's progress (vasooli web), when it is reachable."""
    return f"{settings.public_base_url}/twilio/status" if settings.public_base_url else None


# --- dispatch ---------------------------------------------------------------------------


def _apply_policy(
    session: Session,
    *,
    batch: list[ClaimedMessage],
    now: datetime,
    settings: Settings,
    tally: Counter,
) -> list[ClaimedMessage]:
    """Defer or suppress what may not go now; return the messages to send."""
    # One query loads the batch's borrowers, so policy finds each in the session (kept
    # referenced here: the identity map holds objects weakly).
    ids = {m.borrower_id for m in batch if m.borrower_id is not None}
    _borrowers = session.scalars(select(Borrower).where(Borrower.id.in_(ids))).all()
    batch = _drop_untrue(session, batch, tally)
    to_send = []
    for m in batch:
        decision = policy.decide(session, message=m, now=now, settings=settings)
        if decision.kind is policy.DecisionKind.SEND:
            to_send.append(m)
        elif decision.kind is policy.DecisionKind.WAIT and decision.until is not None:
            # At least a second ahead, so this run does not claim it again.
            until = max(decision.until, now + timedelta(seconds=1))
            outbox.defer(session, message_id=m.id, until=until, reason=decision.reason)
            tally["deferred"] += 1
        else:
            outbox.mark_suppressed(session, message_id=m.id, reason=decision.reason)
            tally["suppressed"] += 1
    return to_send


def _drop_untrue(
    session: Session, batch: list[ClaimedMessage], tally: Counter
) -> list[ClaimedMessage]:
    """The send-time re-check: a loan since paid, closed or changed, a number since
    corrected, a broadcast since canceled: CANCELED with why, instead of sent."""
    untrue = message_truth.untrue_in(session, [m.id for m in batch])
    for message_id, reason in untrue.items():
        message_truth.cancel_claimed(session, message_id=message_id, reason=reason)
        tally["canceled"] += 1
    return [m for m in batch if m.id not in untrue]


def _record_sent(session: Session, *, message: MessageInfo, result: SendResult) -> bool:
    """SENT with the SID; a send answer already past "sent" (the console) is applied too."""
    done = outbox.mark_sent(
        session, message_id=message.id, sid=result.sid, segments=result.segments
    )
    status = twilio_codes.status_of(result.status)
    if done and status is not MessageStatus.SENT:
        session.flush()
        outbox.apply_status(
            session,
            sid=result.sid,
            status=status,
            reported=result.status,
            error_code=None,
            reason=twilio_codes.failure(None).words,
            source=EventSource.WORKER,
        )
    return done


Write = tuple[Callable[..., Any], dict[str, Any]]


def _write_group(factory: Factory, writes: list[Write]) -> list[Any]:
    """Each write's result (or its exception): all in one transaction, else one by one."""
    try:
        with factory.begin() as session:
            return [fn(session, **kwargs) for fn, kwargs in writes]
    except Exception:
        log.warning(
            "writing %s send results together failed; one by one", len(writes), exc_info=True
        )
    results: list[Any] = []
    for fn, kwargs in writes:
        try:
            results.append(in_tx(factory, fn, **kwargs))
        except Exception as exc:  # this message only: left for reconcile
            results.append(exc)
    return results


class Recorder:
    """Send results written in groups: one thread hop and transaction per GROUP_SECONDS."""

    def __init__(self, factory: Factory) -> None:
        self.factory = factory
        self.group: list[Write] = []
        self.written: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    async def write(self, fn: Callable[..., T], **kwargs: Any) -> T:
        """fn(session, **kwargs) in the next group's transaction; its result."""
        if not self.group:
            self.written = asyncio.ensure_future(self._write_later())
        written, index = self.written, len(self.group)
        self.group.append((fn, kwargs))
        # Shielded: a cancelled send must not cancel the other sends' writes.
        result = (await asyncio.shield(written))[index]
        if isinstance(result, Exception):
            raise result
        return result

    async def _write_later(self) -> list[Any]:
        await asyncio.sleep(GROUP_SECONDS)
        group, self.group = self.group, []
        return await asyncio.to_thread(_write_group, self.factory, group)


class Dispatcher:
    """One dispatch run: the limiter, the in-flight cap, the result writer and the tally."""

    def __init__(
        self,
        factory: Factory,
        sender: SmsSender,
        settings: Settings,
        limiter: AsyncLimiter | None,
        now: datetime | None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.factory, self.sender, self.settings = factory, sender, settings
        self.fixed_now = now
        self.limiter = limiter or make_limiter(settings.sms_rate_per_second)
        self.in_flight = asyncio.Semaphore(min(settings.sms_batch_size, MAX_IN_FLIGHT))
        self.callback = status_callback_url(settings)
        self.recorder = Recorder(factory)
        self.tally: Counter = Counter()
        self.worker_id = ""
        self.lease = stuck_after(settings)
        # One waiter for the whole run, raced by every send that is waiting for its turn.
        self.stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None

    def close(self) -> None:
        """Drop the stop waiter (once every send of the run has finished)."""
        if self.stopped is not None:
            self.stopped.cancel()

    def now(self) -> datetime:
        return self.fixed_now or clock.utcnow()

    async def claim(self, cutoff: datetime, worker_id: str) -> list[ClaimedMessage] | None:
        """The next batch, committed as SENDING, less what policy held back; None when none."""
        self.worker_id = worker_id
        batch = await db_call(
            self.factory,
            outbox.claim_due,
            now=cutoff,
            limit=self.settings.sms_batch_size,
            worker_id=worker_id,
            claimed_at=self.now(),
        )
        if not batch:
            return None
        self.tally["claimed"] += len(batch)
        return await db_call(
            self.factory,
            _apply_policy,
            batch=batch,
            now=self.now(),
            settings=self.settings,
            tally=self.tally,
        )

    async def send_all(self, batch: list[ClaimedMessage]) -> None:
        await asyncio.gather(*(self.send(m) for m in batch))

    async def send(self, m: ClaimedMessage) -> None:
        """Send one claimed message and record its fate (put it back if stopped first)."""
        try:
            if not await self._turn():
                await self._release(m)
                return
            if not claims.may_send(m, now=self.now(), lease=self.lease):
                # Late in the lease (a stall, a long queue): another worker may settle it.
                self.in_flight.release()
                await self._release(m, "claim too old to send")
                return
            if await self._settled_by_earlier_attempt(m):
                return
            result: SendResult | SmsError
            try:
                result = await self.sender.send(to=m.to, body=m.body, status_callback=self.callback)
            except (PermanentSmsError, RetryableSmsError, AccountSmsError) as exc:
                result = exc
            finally:
                self.in_flight.release()
            # Written after the slot is freed: the next send need not wait for the database.
            await self._record(m, result)
        except Exception:
            # Unknown whether it left: reconcile asks the provider before any resend.
            log.exception("message %s: send or record failed; left for reconcile", m.id)
            self.tally["unknown"] += 1

    async def _settled_by_earlier_attempt(self, m: ClaimedMessage) -> bool:
        """A retry asks the provider first: an earlier attempt whose answer was lost may have
        arrived after its own check. True when m is settled (adopted, or put back because the
        provider could not be asked); the in-flight slot is then released."""
        if m.attempts <= 1 or m.error_code == RATE_LIMITED_CODE:
            return False  # a first attempt, or the last one was surely refused
        found = await find_lost_send(self.factory, self.sender, m, since=m.created_at)
        if found == []:
            return False
        self.in_flight.release()
        if found:
            await adopt(self.factory, m, found[0])
            self.tally["sent"] += 1
        else:
            delay = backoff(m.attempts, self.settings)
            await self._fenced(
                m,
                outbox.defer,
                message_id=m.id,
                reason="could not ask the provider about an earlier attempt",
                source=EventSource.WORKER,
                until=self.now() + timedelta(seconds=delay),
            )
            self.tally["released"] += 1
        return True

    async def _acquire(self) -> None:
        await self.in_flight.acquire()
        try:
            await self.limiter.acquire()
        except BaseException:
            self.in_flight.release()
            raise

    async def _turn(self) -> bool:
        """An in-flight slot and the limiter's go, or False (holding nothing) once stopping."""
        if self.stopped is None:
            await self._acquire()
            return True
        turn = asyncio.ensure_future(self._acquire())
        try:
            await asyncio.wait((turn, self.stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not turn.done():
                turn.cancel()
                await asyncio.wait((turn,))  # _acquire gives back what it held
        got = not turn.cancelled() and turn.exception() is None
        if got and self.stopped.done():  # a tie goes to stop: nothing has left yet
            self.in_flight.release()
            return False
        return got

    async def _fenced(
        self, m: ClaimedMessage, fn: Callable[..., T], *, or_queued: bool = False, **kwargs: Any
    ) -> T | None:
        """fn's write, applied only while m still carries this run's claim (see sms.claims)."""
        return await self.recorder.write(
            claims.fenced,
            claim=Claim.of(m, self.worker_id),
            write=fn,
            or_queued=or_queued,
            **kwargs,
        )

    async def _release(
        self, m: ClaimedMessage, reason: str = "worker stopped before sending it"
    ) -> None:
        """Not handed to the provider: QUEUED again in its place, attempt given back."""
        await self._fenced(
            m,
            outbox.defer,
            message_id=m.id,
            until=m.send_after,
            reason=reason,
            source=EventSource.WORKER,
        )
        self.tally["released"] += 1

    async def _record(self, m: ClaimedMessage, result: SendResult | SmsError) -> None:
        if isinstance(result, AccountSmsError):
            await self._hold(m, result)
        elif isinstance(result, RetryableSmsError):
            await self._retry(m, result)
        elif isinstance(result, SmsError):
            text = result.message or "refused by the provider"
            await self._fenced(
                m,
                twilio_codes.mark_failed,
                message_id=m.id,
                code=result.code,
                text=text,
                settings=self.settings,
            )
            self.tally["failed"] += 1
        else:
            await self._fenced(m, _record_sent, or_queued=True, message=m, result=result)
            self.tally["sent"] += 1

    async def _hold(self, m: ClaimedMessage, exc: AccountSmsError) -> None:
        """Credentials refused: keep the message queued (attempt given back), try later."""
        if not self.tally["held"]:
            log.error(
                "the SMS provider refused our account (%s %s): check TWILIO_ACCOUNT_SID "
                "and TWILIO_AUTH_TOKEN; messages stay queued",
                exc.code,
                exc.message,
            )
        await self._fenced(
            m,
            outbox.defer,
            message_id=m.id,
            until=self.now() + ACCOUNT_PAUSE,
            reason=f"provider refused the account ({exc.code})",
            source=EventSource.WORKER,
        )
        self.tally["held"] += 1

    async def _retry(self, m: ClaimedMessage, exc: RetryableSmsError) -> None:
        if exc.maybe_sent:
            # The request may have arrived: sending again could text the borrower twice.
            async with self.in_flight:
                found = await find_lost_send(self.factory, self.sender, m)
            if found is None:  # could not ask: reconcile decides later
                self.tally["unknown"] += 1
                return
            if found:
                await adopt(self.factory, m, found[0])
                self.tally["sent"] += 1
                return
        delay = backoff(m.attempts, self.settings, exc.retry_after)
        status = await self._fenced(
            m,
            twilio_codes.mark_retry,
            message_id=m.id,
            error=exc.message,
            error_code=exc.code,
            retry_at=self.now() + timedelta(seconds=delay),
            max_attempts=self.settings.sms_max_attempts,
        )
        self.tally["failed" if status == "failed" else "retried"] += 1


async def _pipeline(
    run: Dispatcher,
    cutoff: datetime,
    worker_id: str,
    stop: asyncio.Event | None,
    sending: set[asyncio.Task],
) -> None:
    """Claim the next batch while the last one is still sending, BATCHES_IN_FLIGHT at most."""
    while stop is None or not stop.is_set():
        if len(sending) >= BATCHES_IN_FLIGHT:
            await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
            continue
        to_send = await run.claim(cutoff, worker_id)
        if to_send is None:
            break
        task = asyncio.create_task(run.send_all(to_send))
        sending.add(task)
        task.add_done_callback(sending.discard)


async def dispatch_due(
    session_factory: Factory,
    sender: SmsSender,
    *,
    settings: Settings,
    worker_id: str,
    now: datetime | None = None,
    limiter: AsyncLimiter | None = None,
    stop: asyncio.Event | None = None,
) -> DispatchReport:
    """Send every message due at the start of the run, batch after batch (until stop is set)."""
    run = Dispatcher(session_factory, sender, settings, limiter, now, stop)
    sending: set[asyncio.Task] = set()
    try:
        await _pipeline(run, now or clock.utcnow(), worker_id, stop, sending)
    except asyncio.CancelledError:
        for task in sending:
            task.cancel()
        raise
    finally:
        # Claimed messages are SENDING: finish them (or their cancellation) before leaving;
        # once stop is set, those not yet handed to the provider go back to QUEUED.
        await asyncio.gather(*sending, return_exceptions=True)
        run.close()
    report = DispatchReport(**run.tally)
    if report.claimed:
        log.info("dispatch %s: %s", worker_id, report)
    return report
