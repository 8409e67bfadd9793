"""The demo's worker side: a sandbox Twilio that fails a realistic few, the real worker and
web app on the demo's loop, a live feed of SMS status changes, texting in, and the clock.

Nothing here knows the bot: `vasooli demo` (cli/demo.py) hands the feed's lines and these
actions to the terminal chat as plain callables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db import clock
from db.config import Settings, SmsBackend
from db.models import Message, MessageEvent, MessageKind, MessageStatus
from db.services.errors import InvalidInput
from db.services.sms.outbox import FINAL
from db.validation import parse_phone
from scheduler.sandbox import CallbackTiming, FailureProfile, TwilioSandbox
from scheduler.serve import listen_socket, running_web, running_worker
from scheduler.twilio_words import describe
from scheduler.web import INBOUND_PATH, build_web_app
from scheduler.worker import WorkerScheduler

log = logging.getLogger(__name__)

SmsSink = Callable[[str, str], None]  # (line, style): style is a status or "summary"
FEED_EVERY = 0.5  # seconds between looks at message_event
FEED_LINES = 4  # message lines shown per look; the rest are summed up in one line
# Shown as the issue draws a message's life: queued -> sent -> delivered / failed. "sending"
# lasts a moment and would double the lines.
_HIDDEN = frozenset({MessageStatus.SENDING})
_BAD = frozenset({MessageStatus.FAILED, MessageStatus.UNDELIVERED, MessageStatus.SUPPRESSED})
_BULK = frozenset({MessageKind.REMINDER, MessageKind.BROADCAST})
# outbox.apply_status records reports that moved nothing with this detail: not a change.
_IGNORED = "ignored"
_BUSY = (MessageStatus.QUEUED, MessageStatus.SENDING)


def mask(phone: str) -> str:
    """+919876543210 -> '+91 98•••••210': tells numbers apart without showing them."""
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return phone[:3] + "•" * max(0, len(phone) - 6) + phone[-3:]
    national = str(number.national_number)
    hidden = "•" * max(0, len(national) - 5)
    return f"+{number.country_code} {national[:2]}{hidden}{national[-3:]}"


@dataclass
class SmsFeed:
    """Turns new message_event rows into one line per message and status change."""

    factory: sessionmaker[Session]
    tz: ZoneInfo
    last_id: int = 0
    shown: dict[int, str] = field(default_factory=dict)  # message id -> last status shown

    def skip_history(self) -> None:
        """Start after the newest event: the feed shows what happens from now on."""
        with self.factory() as session:
            self.last_id = session.scalar(select(func.max(MessageEvent.id))) or 0

    def poll(self) -> list[tuple[str, str]]:
        """(line, style) for everything that happened since the last poll (in a thread)."""
        stmt = (
            select(
                MessageEvent.id,
                MessageEvent.message_id,
                MessageEvent.status,
                MessageEvent.error_code,
                MessageEvent.created_at,
                Message.to_phone,
                MessageEvent.detail,
                Message.kind,
                Message.error_code.label("final_code"),
            )
            .join(Message, Message.id == MessageEvent.message_id)
            .where(MessageEvent.id > self.last_id)
            .order_by(MessageEvent.id)
            .limit(5000)
        )
        with self.factory() as session:
            rows = session.execute(stmt).all()
        changes: dict[int, list[Any]] = {}
        for row in rows:
            self.last_id = row.id
            if row.status in _HIDDEN or (row.detail or "").startswith(_IGNORED):
                continue
            steps = changes.setdefault(row.message_id, [row, []])
            previous = steps[1][-1] if steps[1] else self.shown.get(row.message_id)
            if row.status != previous and previous not in FINAL:
                steps[1].append(row.status)
                steps[0] = row
        found = [(row, statuses) for row, statuses in changes.values() if statuses]
        # When there are too many lines to show, failures and one-off messages (a notice
        # someone just caused, a reply to a borrower) are the news; bulk ones are summed up.
        found.sort(key=lambda change: (change[1][-1] not in _BAD, change[0].kind in _BULK))
        return self._lines(found)

    def _lines(self, changes: list[tuple[Any, list[str]]]) -> list[tuple[str, str]]:
        lines: list[tuple[str, str]] = []
        for row, statuses in changes:
            self.shown[row.message_id] = statuses[-1]
            if len(lines) < FEED_LINES:
                lines.append((self._line(row, statuses), statuses[-1]))
        if len(self.shown) > 50_000:  # the demo may run for hours
            self.shown = dict(list(self.shown.items())[-10_000:])
        rest = changes[FEED_LINES:]
        if rest:
            counts: dict[str, int] = {}
            for _, statuses in rest:
                counts[statuses[-1]] = counts.get(statuses[-1], 0) + 1
            summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            lines.append((f"{'':8}  SMS … and {len(rest)} more: {summary}", "summary"))
        return lines

    def _line(self, row: Any, statuses: list[str]) -> str:
        at = _local(row.created_at, self.tz)
        final = statuses[-1] in (MessageStatus.FAILED, MessageStatus.UNDELIVERED)
        code = row.error_code or (row.final_code if final else None)
        why = f"  ({code}: {describe(code)})" if code else ""
        return (
            f"{at:%H:%M:%S}  SMS {mask(row.to_phone):<15} {row.kind:<9} {' → '.join(statuses)}{why}"
        )


def _local(moment: datetime, tz: ZoneInfo) -> datetime:
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz)


class DemoWorld:
    """The sandbox Twilio (started on construction) plus, in serving(), worker and web."""

    def __init__(self, factory: sessionmaker[Session], *, seed: int = 0) -> None:
        self.factory = factory
        self.sock = listen_socket("127.0.0.1", 0)
        self.public_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.twilio = TwilioSandbox(
            seed=seed,
            failure_profile=FailureProfile(),
            callback_timing=CallbackTiming.realistic(),
            inbound_url=self.public_url + INBOUND_PATH,
        ).start()
        self.scheduler: WorkerScheduler | None = None
        self.settings: Settings | None = None

    def settings_update(self) -> dict[str, Any]:
        """What the demo's Settings need to send through the sandbox and hear back."""
        return {
            "sms_backend": SmsBackend.TWILIO,
            "twilio_api_base_url": self.twilio.base_url,
            "twilio_account_sid": self.twilio.account_sid,
            "twilio_auth_token": SecretStr(self.twilio.auth_token),
            "twilio_from_number": self.twilio.phone_number,
            "twilio_messaging_service_sid": None,
            "public_base_url": self.public_url,
            "port": self.sock.getsockname()[1],
        }

    def close(self) -> None:
        """Stop the sandbox Twilio (after serving() has ended)."""
        self.twilio.stop()
        self.sock.close()

    @contextlib.asynccontextmanager
    async def serving(
        self, settings: Settings, sink: SmsSink, wrap: Callable[[Any], Any] | None = None
    ) -> AsyncIterator[DemoWorld]:
        """Worker, web app and the SMS feed on the running loop until the block ends.

        wrap, given by the command line, puts more beside the web app on its port (the Mini
        App, which this package may not import).
        """
        self.settings = settings
        feed = SmsFeed(self.factory, settings.tz)
        await asyncio.to_thread(feed.skip_history)
        app = build_web_app(settings, self.factory)
        if wrap is not None:
            app = wrap(app)
        async with (
            running_worker(settings, self.factory) as scheduler,
            running_web(app, settings, sock=self.sock, host="127.0.0.1"),
        ):
            self.scheduler = scheduler
            task = asyncio.create_task(self._feed(feed, sink), name="sms-feed")
            try:
                yield self
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self.scheduler = None

    async def _feed(self, feed: SmsFeed, sink: SmsSink) -> None:
        while True:
            try:
                lines = await asyncio.to_thread(feed.poll)
            except Exception:  # a busy database now and then must not end the feed
                log.exception("sms feed: could not read message events")
                lines = []
            for line, style in lines:
                sink(line, style)
            await asyncio.sleep(FEED_EVERY)

    async def text_in(self, phone: str, body: str) -> str:
        """A borrower texts the agency: the sandbox posts the signed webhook to the web app."""
        assert self.settings is not None
        try:
            e164 = parse_phone(phone, region=self.settings.default_phone_region)
        except InvalidInput as err:
            return str(err)
        if not body.strip():
            return "Say what the borrower texts, e.g. :sms 98765 43210 BAL"
        reply = await self.twilio.send_inbound_async(e164, body)
        return f"SMS from {mask(e164)} {body!r}: the web app answered HTTP {reply.status_code}"

    async def move_clock(self, delta: timedelta) -> str:
        """Move the demo's clock, then run the daily job and the reminder planner."""
        assert self.settings is not None and self.scheduler is not None
        clock.advance(delta)
        jobs = self.scheduler.worker_jobs
        daily = await jobs.daily()
        planned = await jobs.plan()
        now = clock.utcnow().astimezone(self.settings.tz)
        return (
            f"The clock is now {now:%a %d %b %Y %H:%M} ({self.settings.agency_timezone}): "
            f"{daily.promises_broken} promises broken, {daily.late_fees} late fees, "
            f"{planned} reminders queued."
        )

    async def wait_sms(self, timeout: float = 30.0) -> bool:
        """Until nothing due is waiting to be sent and every delivery report is in."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await asyncio.to_thread(self._busy):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.25)
        remaining = max(0.1, deadline - loop.time())
        with contextlib.suppress(TimeoutError):
            await self.twilio.wait_callbacks_async(remaining)
        await asyncio.sleep(FEED_EVERY * 2 + 0.2)  # callbacks applied; let the feed show them
        return True

    def _busy(self) -> int:
        with self.factory() as session:
            return (
                session.scalar(
                    select(func.count(Message.id)).where(
                        Message.status.in_(_BUSY), Message.send_after <= clock.utcnow()
                    )
                )
                or 0
            )
