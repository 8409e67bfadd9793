"""Lookups by loan number, phone and name prefix: the services vs raw indexed SQL."""

from __future__ import annotations

import random
from collections.abc import Callable

from sqlalchemy import text

from bench.common import Bench, Ctx, Goal, latencies, percentile
from bench.seedfast import FIRST, loan_number, phone
from db.models import Role
from db.services.access import Actor
from db.services.loans.add import get_loan
from db.services.loans.search import search_loans

_CARD = "SELECT l.*, b.name, b.phone FROM loan l JOIN borrower b ON b.id = l.borrower_id "
_RAW = {
    "number": _CARD + "WHERE l.loan_number = :v",
    "phone": _CARD + "WHERE b.phone = :v ORDER BY l.id LIMIT 9",
    "name_postgresql": _CARD + "WHERE b.name_key LIKE :v || '%' "
    'ORDER BY b.name_key COLLATE "C", l.id LIMIT 9',
    "name_sqlite": _CARD + "WHERE b.name_key >= :v AND b.name_key < :v || char(1114111) "
    "ORDER BY b.name_key, l.id LIMIT 9",
}

# Everything the card shows, by hand: the loan with its borrower, agent, open promise and last
# contact, then its installments. The service sends the same two round trips through the ORM.
_NEWEST = (
    "NOT EXISTS (SELECT 1 FROM {t} n WHERE n.loan_id = x.loan_id{also} AND "
    "(n.created_at > x.created_at OR (n.created_at = x.created_at AND n.id > x.id)))"
)
_CARD_SQL = (
    "SELECT l.*, b.*, a.name, x.*, pm.name, c.*, cw.name FROM loan l "
    "JOIN borrower b ON b.id = l.borrower_id LEFT JOIN staff a ON a.id = l.agent_id "
    "LEFT JOIN promise x ON x.loan_id = l.id AND x.state = 'open' AND "
    + _NEWEST.format(t="promise", also=" AND n.state = 'open'")
    + " LEFT JOIN staff pm ON pm.id = x.made_by_id "
    "LEFT JOIN (SELECT * FROM contact x WHERE "
    + _NEWEST.format(t="contact", also="")
    + ") c ON c.loan_id = l.id LEFT JOIN staff cw ON cw.id = c.staff_id "
    "WHERE l.loan_number = :v"
)
_INSTALLMENTS_SQL = "SELECT * FROM installment WHERE loan_id = :id ORDER BY seq"


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


def _card_sql_call(ctx: Ctx, value: str) -> Callable[[], object]:
    card, installments = text(_CARD_SQL), text(_INSTALLMENTS_SQL)

    def call() -> object:
        with ctx.engine.connect() as conn:
            row = conn.execute(card, {"v": value}).one()
            return row, conn.execute(installments, {"id": row.id}).all()

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
        bench.say(
            "%s: service p50 %.2f ms p95 %.2f ms; raw SQL p50 %.2f ms p95 %.2f ms",
            kind,
            p50,
            p95,
            percentile(raw, 50),
            percentile(raw, 95),
        )
        bench.figure(f"{kind}_p50_ms", p50, None, Goal.INFO, "ms")
        bench.figure(f"{kind}_p95_ms", p95, 20, Goal.AT_MOST, "ms")
        bench.figure(f"{kind}_ratio", p50 / max(percentile(raw, 50), 1e-6), 3.0, Goal.AT_MOST, "x")
    numbers = _samples(ctx, n)["number"]
    service = latencies([_service_call(ctx, "number", v) for v in numbers])
    card_sql = latencies([_card_sql_call(ctx, v) for v in numbers])
    bench.say(
        "card: service p50 %.2f ms; the same two statements as plain SQL p50 %.2f ms",
        percentile(service, 50),
        percentile(card_sql, 50),
    )
    bench.figure(
        "card_vs_card_sql",
        percentile(service, 50) / max(percentile(card_sql, 50), 1e-6),
        None,
        Goal.INFO,
        "x",
        "the rest is the ORM and building the card",
    )
    if not ctx.quick:
        bench.say("plan of the name query:\n%s", explain(ctx, "name", "sun"))
    return bench.finish()
