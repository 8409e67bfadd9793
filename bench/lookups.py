"""Lookups by loan number, phone and name prefix: the services vs raw indexed SQL."""

from __future__ import annotations

import random
from collections.abc import Callable

from sqlalchemy import text

from bench.common import Bench, Ctx, Goal, latencies, percentile
from bench.seedfast import FIRST, loan_number, phone
from db.models import Role
from db.services.access import Actor
from db.services.loan_queries import search_loans
from db.services.loans import get_loan

_CARD = "SELECT l.*, b.name, b.phone FROM loan l JOIN borrower b ON b.id = l.borrower_id "
_RAW = {
    "number": _CARD + "WHERE l.loan_number = :v",
    "phone": _CARD + "WHERE b.phone = :v ORDER BY l.id LIMIT 9",
    "name_postgresql": _CARD + "WHERE b.name_key LIKE :v || '%' "
    'ORDER BY b.name_key COLLATE "C", l.id LIMIT 9',
    "name_sqlite": _CARD + "WHERE b.name_key >= :v AND b.name_key < :v || char(1114111) "
    "ORDER BY b.name_key, l.id LIMIT 9",
}


def _samples(ctx: Ctx, n: int) -> dict[str, list[str]]:
    rng = random.Random(11)
    return {
        "number": [loan_number(rng.randint(1, ctx.loans)) for _ in range(n)],
        "phone": [phone(rng.randint(1, ctx.borrowers)) for _ in range(n)],
        "name": [rng.choice(FIRST)[:4].lower() for _ in range(n)],
    }


def _service_call(ctx: Ctx, kind: str, value: str) -> Callable[[], object]:
    actor = Actor(staff_id=ctx.manager_id, role=Role.MANAGER)

    def call() -> object:
        with ctx.factory() as session:
            if kind == "number":
                return get_loan(session, actor=actor, loan_number=value, today=ctx.today)
            items, _more = search_loans(session, actor=actor, text=value, today=ctx.today)
            assert items, f"nothing found for {value}"
            return items

    return call


def _raw_call(ctx: Ctx, kind: str, value: str) -> Callable[[], object]:
    sql = text(_RAW.get(kind) or _RAW[f"{kind}_{ctx.backend}"])

    def call() -> object:
        with ctx.engine.connect() as conn:
            return conn.execute(sql, {"v": value}).all()

    return call


def explain(ctx: Ctx, kind: str, value: str) -> str:
    """The raw query's plan, for the report."""
    sql = _RAW.get(kind) or _RAW[f"{kind}_{ctx.backend}"]
    prefix = "EXPLAIN ANALYZE " if ctx.backend == "postgresql" else "EXPLAIN QUERY PLAN "
    with ctx.engine.connect() as conn:
        rows = conn.execute(text(prefix + sql), {"v": value}).all()
    return "\n".join(" ".join(str(c) for c in row) for row in rows)


def run(ctx: Ctx) -> list:
    bench = Bench("lookups", ctx.backend)
    n = 10 if ctx.smoke else 100 if ctx.quick else 300
    for kind, values in _samples(ctx, n).items():
        latencies([_service_call(ctx, kind, v) for v in values[:10]])  # warm the pool and caches
        service = latencies([_service_call(ctx, kind, v) for v in values])
        raw = latencies([_raw_call(ctx, kind, v) for v in values])
        p50, p95 = percentile(service, 50), percentile(service, 95)
        bench.say("%s: service p50 %.2f ms p95 %.2f ms; raw SQL p50 %.2f ms p95 %.2f ms",
                  kind, p50, p95, percentile(raw, 50), percentile(raw, 95))
        bench.figure(f"{kind}_p50_ms", p50, None, Goal.INFO, "ms")
        bench.figure(f"{kind}_p95_ms", p95, 20, Goal.AT_MOST, "ms")
        bench.figure(f"{kind}_ratio", p50 / max(percentile(raw, 50), 1e-6), 3.0, Goal.AT_MOST, "x")
    if not ctx.quick:
        bench.say("plan of the name query:\n%s", explain(ctx, "name", "sun"))
    return bench.finish()
