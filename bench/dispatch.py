"""dispatch_due against the sandbox Twilio: the rate cap held, and uncapped vs raw httpx POSTs."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy import delete, insert

from bench.common import Bench, Ctx, Goal
from db.config import Settings
from db.models import Message, MessageEvent, MessageKind, MessageStatus
from scheduler.dispatch import MAX_IN_FLIGHT, dispatch_due
from scheduler.sandbox import TwilioSandbox
from scheduler.sms import TwilioSender

CAP = 100.0
LATENCY = 0.15
UNCAPPED = 1000.0  # the highest SMS_RATE_PER_SECOND allows


def queue_messages(ctx: Ctx, count: int, tag: str) -> None:
    """count due reminders to distinct borrowers that may be texted (not opted out)."""
    now = ctx.noon_utc()
    ids = [i for i in range(1, ctx.borrowers + 1) if i % 100][:count]
    rows = [
        {
            "to_phone": f"+919{i:09d}",
            "body": f"Reminder {tag} {i}: your payment is due.",
            "kind": MessageKind.REMINDER,
            "borrower_id": i,
            "idempotency_key": f"bench:{tag}:{i}",
            "status": MessageStatus.QUEUED,
            "attempts": 0,
            "send_after": now - timedelta(minutes=1),
            "expires_at": now + timedelta(hours=48),
            "created_at": now,
            "updated_at": now,
        }
        for i in ids
    ]
    with ctx.factory.begin() as session:
        clear_messages(session)
        for start in range(0, len(rows), 5000):
            session.execute(insert(Message), rows[start : start + 5000])


def clear_messages(session) -> None:
    session.execute(delete(MessageEvent))
    session.execute(delete(Message))


def sender_for(sandbox: TwilioSandbox) -> TwilioSender:
    return TwilioSender(
        sandbox.account_sid,
        sandbox.auth_token,
        from_number=sandbox.phone_number,
        api_base_url=sandbox.base_url,
    )


async def _dispatch(ctx: Ctx, sandbox: TwilioSandbox, settings: Settings) -> tuple[float, int]:
    sender = sender_for(sandbox)
    try:
        started = time.perf_counter()
        report = await dispatch_due(
            ctx.factory, sender, settings=settings, worker_id="bench", now=ctx.noon_utc()
        )
        return time.perf_counter() - started, report.sent
    finally:
        await sender.aclose()


async def raw_posts(sandbox: TwilioSandbox, count: int, concurrency: int) -> float:
    """Seconds for count plain POSTs to the sandbox's Messages endpoint, concurrency at once."""
    left = iter(range(count))
    auth = (sandbox.account_sid, sandbox.auth_token)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(auth=auth, limits=limits, timeout=30) as client:

        async def worker() -> None:
            for i in left:
                data = {"To": f"+918{i:09d}", "From": sandbox.phone_number, "Body": f"raw {i}"}
                response = await client.post(sandbox.api_url, data=data)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def duplicates(sandbox: TwilioSandbox) -> int:
    """Messages the sandbox received more than once (same number and body)."""
    seen = Counter((m.to, m.body) for m in sandbox.messages)
    return sum(n - 1 for n in seen.values() if n > 1)


def run(ctx: Ctx) -> list:
    bench = Bench("dispatch", ctx.backend)
    capped_n = 500 if ctx.quick else 5000
    uncapped_n = 400 if ctx.quick else 2000
    with TwilioSandbox(latency=LATENCY) as sandbox:
        capped = ctx.settings.model_copy(update={"sms_rate_per_second": CAP})
        queue_messages(ctx, capped_n, "capped")
        seconds, sent = asyncio.run(_dispatch(ctx, sandbox, capped))
        bench.say("capped at %g/s: %s sent in %.1f s", CAP, sent, seconds)
        bench.figure("capped_rate", sent / seconds, None, Goal.INFO, "msg/s")
        bench.figure("capped_vs_cap", sent / seconds / CAP, 0.95, Goal.AT_LEAST, "x")
        sandbox.reset()
        uncapped = ctx.settings.model_copy(update={"sms_rate_per_second": UNCAPPED})
        queue_messages(ctx, uncapped_n, "uncapped")
        seconds, sent = asyncio.run(_dispatch(ctx, sandbox, uncapped))
        dupes = duplicates(sandbox)
        concurrency = min(uncapped.sms_batch_size, MAX_IN_FLIGHT)
        raw_seconds = asyncio.run(raw_posts(sandbox, sent, concurrency))
        bench.say(
            "uncapped: %s sent in %.1f s; raw httpx (%s at once): %s in %.1f s",
            sent,
            seconds,
            concurrency,
            sent,
            raw_seconds,
        )
        bench.figure("uncapped_rate", sent / seconds, None, Goal.INFO, "msg/s")
        bench.figure("raw_rate", sent / raw_seconds, None, Goal.INFO, "msg/s")
        bench.figure("uncapped_vs_raw", raw_seconds / seconds, 0.7, Goal.AT_LEAST, "x")
        bench.figure("duplicates", dupes, 0, Goal.AT_MOST, "messages")
    with ctx.factory.begin() as session:
        clear_messages(session)
    return bench.finish()
