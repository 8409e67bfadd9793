"""The Mini App's pages at N loans: each page's service queries, p50 / p95 and statements,
and the heaviest query (the book by agent and days past due) against hand-written SQL.

Each page is timed through its builder in bot/miniapp/pages.py (the services and nothing
else: no HTTP, no template), as a manager sees it. The raw-SQL baseline is the same
aggregate written by hand: the ratio says what the service layer costs on top of it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import bindparam, text

from bench.common import Bench, Ctx, Goal, QueryCounter, latencies, median, percentile
from bot.miniapp.pages import PAGES
from db import clock
from db.models import Role, UTCDateTime
from db.services.access import Actor
from db.services.collection.ledger import Bucket, bucket_dates
from db.services.reports import portfolio

PAGE_P95_MS = 300  # issue 13: every page at 1M loans on PostgreSQL
MAX_QUERIES = 8  # a page is a fixed handful of statements, never one per row
BOOK_VS_RAW = 1.5  # the service's book query may cost this much more than the raw SQL


def _page(ctx: Ctx, actor: Actor, name: str) -> Callable[[], object]:
    builder = PAGES[name]

    def call() -> object:
        with ctx.factory() as session:
            return builder(session, actor, ctx.settings, {})

    return call


def _raw_book(ctx: Ctx) -> Callable[[], object]:
    """portfolio()'s two statements written by hand: the book by agent and days past due
    (the heaviest query of every page), and this month's collections by agent."""
    whens, params = [], {}
    for i, bucket in enumerate(Bucket):
        earliest, latest = bucket_dates(bucket, ctx.today)
        params[f"hi{i}"] = latest
        low = f" AND next_due_date >= :lo{i}" if earliest is not None else ""
        if earliest is not None:
            params[f"lo{i}"] = earliest
        whens.append(f"WHEN next_due_date <= :hi{i}{low} THEN {i}")
    sql = text(
        "SELECT agent_id, b, count(*), sum(round((owed) * 100)), sum(round(paid * 100)) FROM ("
        f" SELECT agent_id, CASE {' '.join(whens)} ELSE -1 END AS b,"
        " amount_payable + fees_charged AS owed, amount_paid AS paid"
        " FROM loan WHERE state = 'active' AND archived_at IS NULL) AS book GROUP BY agent_id, b"
    )

    day = clock.day_start(ctx.today, ctx.settings.tz)
    month = clock.day_start(ctx.today.replace(day=1), ctx.settings.tz)
    end = clock.day_start(ctx.today + timedelta(days=1), ctx.settings.tz)
    collected = text(
        "SELECT l.agent_id, sum(round(CASE WHEN p.paid_at >= :day THEN p.amount ELSE 0 END"
        " * 100)), sum(round(p.amount * 100)) FROM payment p JOIN loan l ON l.id = p.loan_id"
        " WHERE p.paid_at >= :month AND p.paid_at < :end AND l.archived_at IS NULL"
        " GROUP BY l.agent_id"
    ).bindparams(*(bindparam(n, type_=UTCDateTime()) for n in ("day", "month", "end")))

    def call() -> object:
        with ctx.engine.connect() as conn:
            book = conn.execute(sql, params).all()
            return book, conn.execute(collected, {"day": day, "month": month, "end": end}).all()

    return call


def _service_book(ctx: Ctx, actor: Actor) -> Callable[[], object]:
    def call() -> object:
        with ctx.factory() as session:
            return portfolio(session, actor=actor, today=ctx.today, tz=ctx.settings.tz)

    return call


def _measure_page(bench: Bench, ctx: Ctx, name: str, call: Callable[[], object], reps: int):
    counter = QueryCounter(ctx.engine)
    with counter.counting():
        call()
    times = latencies([call] * reps)
    bench.figure(f"{name}_queries", counter.count, MAX_QUERIES, Goal.AT_MOST, "statements")
    bench.figure(f"{name}_p50_ms", median(times), None, Goal.INFO, "ms")
    bench.figure(f"{name}_p95_ms", percentile(times, 95), PAGE_P95_MS, Goal.AT_MOST, "ms")


def run(ctx: Ctx) -> list:
    bench = Bench("dashboards", ctx.backend)
    manager = Actor(staff_id=ctx.manager_id, role=Role.MANAGER)
    reps = 2 if ctx.smoke else 3 if ctx.quick else 20
    for name in PAGES:
        _measure_page(bench, ctx, name, _page(ctx, manager, name), reps)
    raw = latencies([_raw_book(ctx)] * reps)
    service = latencies([_service_book(ctx, manager)] * reps)
    bench.figure("book_raw_sql_p50_ms", median(raw), None, Goal.INFO, "ms")
    bench.figure("book_raw_sql_p95_ms", percentile(raw, 95), None, Goal.INFO, "ms")
    bench.figure("book_service_p50_ms", median(service), None, Goal.INFO, "ms")
    bench.figure("book_service_p95_ms", percentile(service, 95), None, Goal.INFO, "ms")
    ratio = median(service) / max(median(raw), 0.001)
    bench.figure("book_service_vs_raw", ratio, BOOK_VS_RAW, Goal.AT_MOST, "x (p50)")
    return bench.finish()
