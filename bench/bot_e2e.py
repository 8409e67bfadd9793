"""The bot end to end: the real Application polling the sandbox Bot API, 20 agents at once.

Each simulated agent sends `/loan <number>` and waits for the card before the next one, so
updates/s is replies per second and latency is from sending to the card being shown.
Run twice: as configured, where AIORateLimiter holds every reply to Telegram's ~30
messages/s per bot (Telegram's limit, not ours), and without the limiter, which measures
what Vasooli itself can handle (the issue's goal).
"""

from __future__ import annotations

import asyncio
import random
import time

from pydantic import SecretStr
from sqlalchemy import func, select

from bench.common import Bench, Ctx, Goal, percentile
from bench.seedfast import MANAGER_TELEGRAM_ID, loan_number
from bot.app import build_application
from bot.sandbox import TelegramSandbox
from db.models import Role, Staff
from db.services.staff import members as staff_service

TOKEN = "424242:BENCH"
AGENTS = 20
PASSWORD = "bench horse battery staple"
FIRST_USER_ID = 770_000_000
# The start of the bot's answer when a handler crashed (bot/texts.py).
SORRY = "something went wrong"


def _first_free_user_id(ctx: Ctx) -> int:
    """After the bench agents of earlier runs on this database (each run adds its own)."""
    stmt = select(func.max(Staff.telegram_user_id)).where(
        Staff.telegram_user_id.between(FIRST_USER_ID, MANAGER_TELEGRAM_ID - 1)
    )
    with ctx.factory() as session:
        return (session.scalar(stmt) or FIRST_USER_ID - 1) + 1


def _make_staff(ctx: Ctx, sandbox: TelegramSandbox, count: int) -> list[int]:
    """count logged-in managers (they see every loan), made through the services."""
    users, first = [], _first_free_user_id(ctx)
    for n in range(count):
        user_id = first + n
        sandbox.user(user_id, f"Bench {n}", None, started=True)
        with ctx.factory.begin() as session:
            invite = staff_service.create_invite(session, actor=None, role=Role.MANAGER)
        with ctx.factory.begin() as session:
            staff_service.redeem_invite(
                session,
                code=invite.code,
                telegram_user_id=user_id,
                chat_id=user_id,
                name=f"Bench {n}",
                username=None,
                password=PASSWORD,
            )
        users.append(user_id)
    return users


def _send(sandbox: TelegramSandbox, user_id: int, text: str) -> None:
    # The sandbox's listener lock first, as tests/bot_harness.py does (lock order).
    dispatching = getattr(sandbox._world, "_dispatching", None)
    if dispatching is None:
        sandbox.send_text(user_id, text)
        return
    with dispatching:
        sandbox.send_text(user_id, text)


def _answer(number: str):
    return lambda m: number in m["text"] or SORRY in m["text"]


async def _agent(
    ctx: Ctx, sandbox: TelegramSandbox, user_id: int, until: float, errors: list[str]
) -> list[float]:
    rng, times = random.Random(user_id), []
    while time.perf_counter() < until:
        number = loan_number(rng.randint(1, ctx.loans))
        started = time.perf_counter()
        _send(sandbox, user_id, f"/loan {number}")
        reply = await sandbox.wait_for_async(user_id, _answer(number), timeout=30)
        if SORRY in reply["text"]:
            errors.append(number)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def _drive(
    ctx: Ctx, seconds: float, errors: list[str], rate_limited: bool
) -> tuple[float, list[float]]:
    sandbox = TelegramSandbox(token=TOKEN, bot_username="vasooli_bench_bot").start()
    settings = ctx.settings.model_copy(
        update={
            "telegram_bot_token": SecretStr(TOKEN),
            "telegram_api_base_url": sandbox.base_url,
            "bot_commands_per_minute": 100_000,
        }
    )
    app = build_application(settings, ctx.factory, rate_limiter=rate_limited)
    updater = app.updater
    if updater is None:  # build_application always gives one: the bot polls
        raise RuntimeError("the application has no updater")
    try:
        await app.initialize()
        if app.post_init:
            await app.post_init(app)
        await app.start()
        await updater.start_polling(poll_interval=0.0, timeout=1)
        users = await asyncio.to_thread(_make_staff, ctx, sandbox, _agents(ctx))
        warm = time.perf_counter() + (0.2 if ctx.smoke else 1.0)
        await asyncio.gather(*(_agent(ctx, sandbox, u, warm, []) for u in users))
        started = time.perf_counter()
        until = started + seconds
        runs = await asyncio.gather(*(_agent(ctx, sandbox, u, until, errors) for u in users))
        return time.perf_counter() - started, [t for run in runs for t in run]
    finally:
        if updater.running:
            await updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        sandbox.stop()


def _agents(ctx: Ctx) -> int:
    return 3 if ctx.smoke else AGENTS


def _measure(bench: Bench, ctx: Ctx, suffix: str, rate_limited: bool) -> None:
    errors: list[str] = []
    duration = 1.0 if ctx.smoke else 5.0 if ctx.quick else 20.0
    seconds, times = asyncio.run(_drive(ctx, duration, errors, rate_limited))
    bench.say(
        "%s agents, rate limiter %s: %s replies in %.1f s",
        _agents(ctx),
        "on" if rate_limited else "off",
        len(times),
        seconds,
    )
    if rate_limited:
        bench.figure(
            "updates_per_s" + suffix,
            len(times) / seconds,
            None,
            Goal.INFO,
            "updates/s",
            "Telegram's limit: AIORateLimiter keeps a bot to ~30 msg/s",
        )
    else:
        bench.figure(
            "updates_per_s",
            len(times) / seconds,
            100,
            Goal.AT_LEAST,
            "updates/s",
            "Vasooli's own capacity: the same Application without the rate limiter",
        )
    bench.figure(
        "errors" + suffix, len(errors), 0, Goal.AT_MOST, "replies", "the bot's 'went wrong' answer"
    )
    bench.figure("reply_p50_ms" + suffix, percentile(times, 50), None, Goal.INFO, "ms")
    bench.figure("reply_p95_ms" + suffix, percentile(times, 95), None, Goal.INFO, "ms")


def run(ctx: Ctx) -> list:
    bench = Bench("bot", ctx.backend)
    _measure(bench, ctx, "", rate_limited=False)
    _measure(bench, ctx, "_telegram_limited", rate_limited=True)
    return bench.finish()
