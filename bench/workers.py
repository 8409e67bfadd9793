"""1, 2 and 3 worker processes on PostgreSQL draining one queue: throughput and duplicates."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from datetime import datetime

from sqlalchemy import func, select

from bench.common import Bench, Ctx, Goal, bench_settings
from bench.dispatch import UNCAPPED, duplicates, queue_messages
from db.models import Message, MessageEvent, MessageStatus
from db.session import make_engine, make_session_factory
from scheduler.dispatch import dispatch_due
from scheduler.sandbox import TwilioSandbox
from scheduler.sms import TwilioSender

LATENCY = 0.05


def worker_process(
    url: str,
    base_url: str,
    sid: str,
    token: str,
    number: str,
    name: str,
    now: datetime,
    barrier,
    results,
) -> None:
    """One worker: wait for the others, then drain the queue; puts the messages it sent."""
    settings = bench_settings(url, sms_rate_per_second=UNCAPPED)
    engine = make_engine(settings.database_url, pool_size=5)
    factory = make_session_factory(engine)

    async def drain() -> int:
        sender = TwilioSender(sid, token, from_number=number, api_base_url=base_url)
        try:
            report = await dispatch_due(factory, sender, settings=settings, worker_id=name, now=now)
            return report.sent
        finally:
            await sender.aclose()

    barrier.wait()
    try:
        results.put(asyncio.run(drain()))
    finally:
        engine.dispose()


def _drain_with(ctx: Ctx, sandbox: TwilioSandbox, count: int) -> tuple[float, list[int]]:
    """Start count processes together; seconds from the start signal until all are done."""
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(count + 1), spawn.Queue()
    procs = [
        spawn.Process(
            target=worker_process,
            args=(
                ctx.url,
                sandbox.base_url,
                sandbox.account_sid,
                sandbox.auth_token,
                sandbox.phone_number,
                f"bench-w{n}",
                ctx.noon_utc(),
                barrier,
                results,
            ),
        )
        for n in range(count)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)
    started = time.perf_counter()
    sent = [results.get(timeout=3600) for _ in procs]
    seconds = time.perf_counter() - started
    for proc in procs:
        proc.join()
    return seconds, sent


def _sent_twice(ctx: Ctx) -> int:
    """Messages with more than one 'sent' event in the database."""
    per = (
        select(MessageEvent.message_id)
        .where(MessageEvent.status == MessageStatus.SENT)
        .group_by(MessageEvent.message_id)
        .having(func.count() > 1)
    )
    with ctx.factory() as session:
        return session.scalar(select(func.count()).select_from(per.subquery())) or 0


def _unsent(ctx: Ctx) -> int:
    with ctx.factory() as session:
        stmt = select(func.count()).where(Message.status != MessageStatus.SENT)
        return session.scalar(stmt) or 0


def run(ctx: Ctx) -> list:
    bench = Bench("workers", ctx.backend)
    if ctx.backend != "postgresql":
        bench.say("skipped: several workers are a PostgreSQL setup (SKIP LOCKED)")
        return bench.finish()
    total = 2000 if ctx.quick else 20_000
    with TwilioSandbox(latency=LATENCY) as sandbox:
        for count in (1, 2, 3):
            sandbox.reset()
            queue_messages(ctx, total, f"w{count}")
            seconds, sent = _drain_with(ctx, sandbox, count)
            dupes = duplicates(sandbox) + _sent_twice(ctx)
            bench.say(
                "%s worker(s): %s sent (%s) in %.1f s, %s not sent, %s duplicates",
                count,
                sum(sent),
                "+".join(map(str, sent)),
                seconds,
                _unsent(ctx),
                dupes,
            )
            bench.figure(f"rate_{count}", sum(sent) / seconds, None, Goal.INFO, "msg/s")
            bench.figure(f"duplicates_{count}", dupes, 0, Goal.AT_MOST, "messages")
    return bench.finish()
