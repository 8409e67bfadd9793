"""plan_reminders over the seeded loans vs a hand-written INSERT ... SELECT of the same rows.

Both run in a transaction that is rolled back, so every repetition plans the same day.
plan_reminders runs in a fresh spawned process, so its peak RSS is the planner's own.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta

from sqlalchemy import text

from bench.common import Bench, Ctx, Goal, bench_settings, median
from db import sms_text
from db.session import make_engine, make_session_factory
from scheduler.jobs import late_days, plan_reminders

# The same filters and due-date range (today's, plus the days still caught up, see
# scheduler.jobs.late_days) as scheduler.jobs._unreminded; the body is a plain concatenation.
_SELECT = """
SELECT b.phone, 'Dear ' || b.name || ', ' || CAST(i.principal_due + i.interest_due + i.fee_due
         - i.amount_paid - i.fee_paid AS TEXT) || ' is due on ' || CAST(i.due_date AS TEXT)
         || ' for loan ' || l.loan_number || '. Reply STOP to opt out.',
       'reminder', b.id, i.loan_id, :rule, {key}, 'queued', 0, :send_after, :expires_at,
       :now, :now
FROM installment i JOIN loan l ON l.id = i.loan_id JOIN borrower b ON b.id = l.borrower_id
WHERE i.due_date BETWEEN :first AND :due AND l.state = 'active'
  AND (i.amount_paid < i.principal_due + i.interest_due OR i.fee_paid < i.fee_due)
  AND b.opted_out_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM suppression s WHERE s.phone = b.phone)
  AND NOT EXISTS (SELECT 1 FROM message m WHERE m.idempotency_key = {key})
ORDER BY i.loan_id
"""
_COLS = (
    "to_phone, body, kind, borrower_id, loan_id, rule, idempotency_key, status, attempts, "
    "send_after, expires_at, created_at, updated_at"
)
_EVENTS = (
    "INSERT INTO message_event (message_id, status, source, detail, created_at) "
    "SELECT id, 'queued', 'planner', :rule, :now FROM {ids}"
)


def _key_sql(postgres: bool) -> str:
    loan_id = "CAST(i.loan_id AS TEXT)"
    return "'rem:' || " + loan_id + " || :suffix || CAST(i.due_date AS TEXT)"


def _sql_rule(conn, *, postgres: bool, days: int, today: date, ctx: Ctx) -> int:
    rule, due = sms_text.rule_name(days), today - timedelta(days=days)
    now = ctx.noon_utc()
    first = due - timedelta(days=late_days(days, ctx.settings))
    params = {
        "rule": rule,
        "due": due,
        "first": first,
        "suffix": f":{rule}:",
        "now": now,
        "send_after": now,
        "expires_at": now + timedelta(hours=48),
    }
    select = _SELECT.format(key=_key_sql(postgres))
    insert = (
        f"INSERT INTO message ({_COLS}) {select} "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
    )
    if postgres:
        stmt = f"WITH ins AS ({insert}) " + _EVENTS.format(ids="ins")
        return conn.execute(text(stmt), params).rowcount
    # SQLite: no INSERT in a CTE; the new rows are found by their rule and creation time.
    done = conn.execute(text(insert.replace("RETURNING id", "")), params).rowcount
    ids = "message WHERE rule = :rule AND created_at = :now"
    conn.execute(text(_EVENTS.format(ids=ids)), params)
    return done


def sql_baseline(ctx: Ctx) -> tuple[float, int]:
    """(seconds, rows) of the hand-written INSERT ... SELECT for every rule, rolled back."""
    postgres = ctx.backend == "postgresql"
    with ctx.engine.connect() as conn:
        trans = conn.begin()
        started = time.perf_counter()
        rows = sum(
            _sql_rule(conn, postgres=postgres, days=d, today=ctx.today, ctx=ctx)
            for d in ctx.settings.reminder_days
        )
        seconds = time.perf_counter() - started
        trans.rollback()
    return seconds, rows


def planner_child(url: str, today: date) -> tuple[float, int, float]:
    """In a fresh process: (seconds, rows, peak RSS MB) of plan_reminders, rolled back."""
    settings = bench_settings(url)
    engine = make_engine(settings.database_url, pool_size=2)
    factory = make_session_factory(engine)
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with factory() as session:
        session.begin()
        started = time.perf_counter()
        rows = plan_reminders(session, today=today, settings=settings)
        seconds = time.perf_counter() - started
        session.rollback()
    engine.dispose()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return seconds, rows, max(peak_mb, base_mb)


def run(ctx: Ctx) -> list:
    """Median of repetitions of both, ratio and the planner's peak RSS."""
    bench = Bench("plan_reminders", ctx.backend)
    reps = 1 if ctx.quick else 3
    spawn = multiprocessing.get_context("spawn")
    plans, sqls, peaks, rows = [], [], [], 0
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn, max_tasks_per_child=1) as pool:
        for _ in range(reps):
            seconds, rows, peak = pool.submit(planner_child, ctx.url, ctx.today).result()
            plans.append(seconds)
            peaks.append(peak)
            sql_seconds, sql_rows = sql_baseline(ctx)
            sqls.append(sql_seconds)
            bench.say(
                "plan_reminders %.2f s (%s rows, peak %.0f MB); SQL %.2f s (%s rows)",
                seconds,
                rows,
                peak,
                sql_seconds,
                sql_rows,
            )
    if rows != sql_rows:
        bench.say("row counts differ: planner %s, SQL %s", rows, sql_rows)
    bench.figure("rows", rows, None, Goal.INFO, "messages")
    bench.figure("planner_s", median(plans), None, Goal.INFO, "s")
    bench.figure("sql_s", median(sqls), None, Goal.INFO, "s")
    bench.figure("ratio", median(plans) / max(median(sqls), 1e-6), 2.0, Goal.AT_MOST, "x")
    bench.figure("peak_rss_mb", max(peaks), 300, Goal.AT_MOST, "MB")
    return bench.finish()
