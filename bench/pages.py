"""/stats and /list at N loans: statements per request (no N+1) and p95, through the services."""

from __future__ import annotations

from collections.abc import Callable

from bench.common import Bench, Ctx, Goal, QueryCounter, latencies, percentile
from db.models import Role
from db.services.access import Actor
from db.services.loans.search import LoanFilter, list_loans
from db.services.reports import portfolio

# A page of 10 loans or a portfolio must cost a fixed handful of statements, never one a row.
MAX_QUERIES = 5
LIST_P95_MS = 20
STATS_P95_MS = 1000


def _stats(ctx: Ctx, actor: Actor) -> Callable[[], object]:
    def call() -> object:
        with ctx.factory() as session:
            return portfolio(session, actor=actor, today=ctx.today, tz=ctx.settings.tz)

    return call


def _list(ctx: Ctx, actor: Actor, pages: int = 3) -> Callable[[], object]:
    """The first pages of /list, following the keyset cursor (one request per page)."""

    def call() -> object:
        cursor = None
        with ctx.factory() as session:
            for _ in range(pages):
                page = list_loans(
                    session,
                    actor=actor,
                    today=ctx.today,
                    after=cursor,
                    filter=LoanFilter.ACTIVE,
                    limit=10,
                )
                cursor = page.next_cursor
        return page

    return call


def _measure(
    bench: Bench,
    ctx: Ctx,
    name: str,
    call: Callable[[], object],
    *,
    per: int,
    reps: int,
    p95_goal: float,
) -> None:
    counter = QueryCounter(ctx.engine)
    with counter.counting():
        call()
    queries = counter.count / per
    times = [t / per for t in latencies([call] * reps)]
    bench.figure(f"{name}_queries", queries, MAX_QUERIES, Goal.AT_MOST, "statements/request")
    bench.figure(f"{name}_p95_ms", percentile(times, 95), p95_goal, Goal.AT_MOST, "ms")


def _settle(ctx: Ctx) -> None:
    """VACUUM ANALYZE the tables /stats reads, as autovacuum would in a live database.

    Right after COPY no page is marked all-visible and no hint bit is set, so every scan
    checks each row's visibility: that roughly doubled /stats, an artefact of the seeding.
    """
    if ctx.backend != "postgresql":
        return
    with ctx.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM (ANALYZE) loan, payment"
        )


def run(ctx: Ctx) -> list:
    bench = Bench("pages", ctx.backend)
    _settle(ctx)
    manager = Actor(staff_id=ctx.manager_id, role=Role.MANAGER)
    agent = Actor(staff_id=ctx.agent_ids[0], role=Role.AGENT)
    reps = 2 if ctx.smoke else 10 if ctx.quick else 30
    _measure(
        bench, ctx, "stats_manager", _stats(ctx, manager), per=1, reps=reps, p95_goal=STATS_P95_MS
    )
    _measure(bench, ctx, "stats_agent", _stats(ctx, agent), per=1, reps=reps, p95_goal=STATS_P95_MS)
    _measure(
        bench, ctx, "list_manager", _list(ctx, manager), per=3, reps=reps, p95_goal=LIST_P95_MS
    )
    _measure(bench, ctx, "list_agent", _list(ctx, agent), per=3, reps=reps, p95_goal=LIST_P95_MS)
    return bench.finish()
