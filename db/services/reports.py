"""Portfolio figures, collections per day and an agent's work list: aggregate SQL, never per loan.

Money is summed in minor units (round(x * 100)): SQLite keeps NUMERIC as floating point, and a
sum of many floats drifts by cents; PostgreSQL's numeric sum is exact either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, and_, case, exists, func, select
from sqlalchemy.orm import Session, aliased

from db import clock
from db.models import HoldKind, Loan, LoanState, Payment, Promise, PromiseState, Staff
from db.money import q
from db.services import risk
from db.services.access import LIVE_LOAN, Actor, SelectT, on_hold
from db.services.collection.ledger import Bucket, bucket_dates
from db.services.loans.snapshots import LoanSummary, loan_summary

ZERO = Decimal("0")
BROKEN_LOOKBACK_DAYS = 7


@dataclass(frozen=True)
class AgentLine:
    agent_id: int | None
    name: str
    loans: int
    outstanding: Decimal
    overdue: int
    collected_month: Decimal


@dataclass(frozen=True)
class Portfolio:
    """The book of ACTIVE loans (borrowed = payable + fees) and the money collected."""

    loans_active: int
    borrowed: Decimal
    repaid: Decimal
    outstanding: Decimal
    overdue_loans: int
    overdue_by_bucket: dict[str, tuple[int, Decimal]]  # bucket label -> (loans, outstanding)
    collected_today: Decimal
    collected_month: Decimal
    per_agent: tuple[AgentLine, ...]  # managers and admins looking at all agents only


class WorkReason(StrEnum):
    # First: a manager decides these; no reminder goes meanwhile (issue 11).
    DISPUTED = "disputed"
    PAUSED = "hardship pause"
    DUE_TODAY = "due today"
    PROMISE_DUE = "promise due today"
    PROMISE_BROKEN = "promise broken"
    OVERDUE = "overdue"


@dataclass(frozen=True)
class WorkItem:
    loan: LoanSummary
    reason: str  # e.g. "due today", "overdue 12 days"
    kind: WorkReason


@dataclass(frozen=True)
class _Cell:
    """The ACTIVE loans of one agent in one bucket (-1: not overdue)."""

    agent_id: int | None
    name: str | None
    bucket: int
    loans: int
    owed: Decimal
    paid: Decimal


def _cents(expr: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(func.round(expr * 100)), 0)


def _money(cents: Decimal | int | None) -> Decimal:
    return q(Decimal(int(cents or 0)).scaleb(-2))


def _scoped(stmt: SelectT, actor: Actor, agent_id: int | None) -> SelectT:
    """Agents see their own loans whatever agent_id says; managers all, or one agent's."""
    if not actor.sees_all_loans:
        return stmt.where(Loan.agent_id == actor.staff_id)
    return stmt if agent_id is None else stmt.where(Loan.agent_id == agent_id)


def _bucket_cond(bucket: Bucket, today: date) -> ColumnElement[bool]:
    earliest, latest = bucket_dates(bucket, today)
    cond = Loan.next_due_date <= latest
    return cond if earliest is None else and_(cond, Loan.next_due_date >= earliest)


def _book(session: Session, actor: Actor, agent_id: int | None, today: date) -> list[_Cell]:
    """The ACTIVE loans actor may see, one cell per agent and bucket: a single pass.

    Overdue loans fall in exactly one bucket, so every other figure is a sum of cells.
    """
    bucket = case(*((_bucket_cond(b, today), i) for i, b in enumerate(Bucket)), else_=-1)
    inner = select(
        Loan.agent_id.label("agent_id"),
        bucket.label("bucket"),
        (Loan.amount_payable + Loan.fees_charged).label("owed"),
        Loan.amount_paid.label("paid"),
    ).where(Loan.state == LoanState.ACTIVE, LIVE_LOAN)
    rows = _scoped(inner, actor, agent_id).subquery()
    # Grouped in an outer query (PostgreSQL can't match a CASE with bound parameters),
    # then the few groups joined to their agent's name.
    cells = (
        select(
            rows.c.agent_id,
            rows.c.bucket,
            func.count().label("n"),
            _cents(rows.c.owed).label("owed"),
            _cents(rows.c.paid).label("paid"),
        )
        .group_by(rows.c.agent_id, rows.c.bucket)
        .subquery()
    )
    stmt = select(
        cells.c.agent_id, Staff.name, cells.c.bucket, cells.c.n, cells.c.owed, cells.c.paid
    ).outerjoin(Staff, Staff.id == cells.c.agent_id)
    return [
        _Cell(a, name, int(b), int(n), _money(owed), _money(paid))
        for a, name, b, n, owed, paid in session.execute(stmt)
    ]


def _collections(
    session: Session, actor: Actor, agent_id: int | None, today: date, tz: ZoneInfo
) -> dict[int | None, tuple[Decimal, Decimal]]:
    """Per loan agent: (collected today, collected this month), reversals netted out."""
    day_start = clock.day_start(today, tz)
    month_start = clock.day_start(today.replace(day=1), tz)
    end = clock.day_start(today + timedelta(days=1), tz)
    stmt = (
        select(
            Loan.agent_id,
            _cents(case((Payment.paid_at >= day_start, Payment.amount), else_=0)),
            _cents(Payment.amount),
        )
        .join(Loan, Loan.id == Payment.loan_id)
        .where(Payment.paid_at >= month_start, Payment.paid_at < end, LIVE_LOAN)
        .group_by(Loan.agent_id)
    )
    rows = session.execute(_scoped(stmt, actor, agent_id))
    return {agent: (_money(day), _money(month)) for agent, day, month in rows}


def _agent_lines(
    cells: list[_Cell], collected: dict[int | None, tuple[Decimal, Decimal]]
) -> tuple[AgentLine, ...]:
    by_agent: dict[int | None, list[_Cell]] = {}
    for cell in cells:
        by_agent.setdefault(cell.agent_id, []).append(cell)
    lines = [
        AgentLine(
            agent,
            own[0].name or "Unassigned",
            sum(c.loans for c in own),
            sum((c.owed - c.paid for c in own), ZERO),
            sum(c.loans for c in own if c.bucket >= 0),
            collected.get(agent, (ZERO, ZERO))[1],
        )
        for agent, own in by_agent.items()
    ]
    return tuple(sorted(lines, key=lambda line: (-line.outstanding, line.name)))


def portfolio(
    session: Session, *, actor: Actor, today: date, tz: ZoneInfo, agent_id: int | None = None
) -> Portfolio:
    """The portfolio the actor may see: totals, overdue buckets, collections, per agent."""
    cells = _book(session, actor, agent_id, today)
    buckets = {
        b.value: (
            sum(c.loans for c in cells if c.bucket == i),
            q(sum((c.owed - c.paid for c in cells if c.bucket == i), ZERO)),
        )
        for i, b in enumerate(Bucket)
    }
    collected = _collections(session, actor, agent_id, today, tz)
    borrowed = q(sum((c.owed for c in cells), ZERO))
    repaid = q(sum((c.paid for c in cells), ZERO))
    everyone = actor.sees_all_loans and agent_id is None
    return Portfolio(
        loans_active=sum(c.loans for c in cells),
        borrowed=borrowed,
        repaid=repaid,
        outstanding=borrowed - repaid,
        overdue_loans=sum(n for n, _ in buckets.values()),
        overdue_by_bucket=buckets,
        collected_today=sum((d for d, _ in collected.values()), ZERO),
        collected_month=sum((m for _, m in collected.values()), ZERO),
        per_agent=_agent_lines(cells, collected) if everyone else (),
    )


def collections_by_day(
    session: Session,
    *,
    actor: Actor,
    today: date,
    tz: ZoneInfo,
    days: int = 30,
    agent_id: int | None = None,
) -> list[tuple[date, Decimal]]:
    """Money collected on each of the last days local days up to today, zeros included."""
    days = max(1, min(days, 366))
    first = today - timedelta(days=days - 1)
    edges = [clock.day_start(first + timedelta(days=i), tz) for i in range(days + 1)]
    # The day index comes from the zone's own midnights (DST-safe on both databases);
    # grouped in an outer query since PostgreSQL can't match a CASE with bound parameters.
    day = case(*[(Payment.paid_at < edges[i + 1], i) for i in range(days)], else_=days)
    inner = (
        select(day.label("day"), Payment.amount.label("amount"))
        .join(Loan, Loan.id == Payment.loan_id)
        .where(Payment.paid_at >= edges[0], Payment.paid_at < edges[-1], LIVE_LOAN)
    )
    sub = _scoped(inner, actor, agent_id).subquery()
    rows = session.execute(select(sub.c.day, _cents(sub.c.amount)).group_by(sub.c.day))
    totals = {int(i): _money(cents) for i, cents in rows}
    return [(first + timedelta(days=i), totals.get(i, q(ZERO))) for i in range(days)]


def _latest_promise_is(state: PromiseState, *conds: ColumnElement[bool]) -> ColumnElement[bool]:
    """The loan's newest promise is in state and meets conds (superseded ones never count)."""
    newer = aliased(Promise)
    return exists(
        select(Promise.id).where(
            Promise.loan_id == Loan.id,
            Promise.state == state,
            *conds,
            ~exists(
                select(newer.id).where(newer.loan_id == Promise.loan_id, newer.id > Promise.id)
            ),
        )
    )


def _work_queries(today: date, dialect: str) -> list[tuple[WorkReason, Select[tuple[Loan]]]]:
    active = select(Loan).where(Loan.state == LoanState.ACTIVE, LIVE_LOAN)
    lookback = today - timedelta(days=BROKEN_LOOKBACK_DAYS)
    broken = _latest_promise_is(
        PromiseState.BROKEN, Promise.promised_date >= lookback, Promise.promised_date < today
    )
    held = [(WorkReason.DISPUTED, HoldKind.DISPUTE), (WorkReason.PAUSED, HoldKind.HARDSHIP)]
    riskiest = (risk.score(dialect, today).desc(), Loan.id)
    wheres = [
        *((why, on_hold(today, kinds=(k,))) for why, k in held),
        (WorkReason.DUE_TODAY, Loan.next_due_date == today),
        (
            WorkReason.PROMISE_DUE,
            _latest_promise_is(PromiseState.OPEN, Promise.promised_date == today),
        ),
        (WorkReason.PROMISE_BROKEN, broken),
        (WorkReason.OVERDUE, Loan.next_due_date < today),
    ]
    return [(why, active.where(cond).order_by(*riskiest)) for why, cond in wheres]


def _reason(kind: WorkReason, summary: LoanSummary) -> str:
    if kind is not WorkReason.OVERDUE:
        return kind.value
    n = summary.days_past_due
    return f"overdue {n} day{'' if n == 1 else 's'}"


def work_list(session: Session, *, actor: Actor, today: date, limit: int = 30) -> list[WorkItem]:
    """Today's list: disputed, paused, due today, promises due today, recently broken, then
    overdue; within each, the riskiest loan first (risk.py)."""
    items: list[WorkItem] = []
    seen: set[int] = set()
    for kind, stmt in _work_queries(today, session.get_bind().dialect.name):
        if len(items) >= limit:
            break
        stmt = _scoped(stmt, actor, None).limit(limit + len(seen))
        for loan in session.scalars(stmt):
            if loan.id in seen or len(items) >= limit:
                continue
            seen.add(loan.id)
            summary = loan_summary(loan, today=today)
            items.append(WorkItem(summary, _reason(kind, summary), kind))
    return items


@dataclass(frozen=True)
class Figures:
    """/stats: the portfolio and the collections per day, read in one transaction."""

    book: Portfolio
    days: list[tuple[date, Decimal]]


def portfolio_figures(
    session: Session, *, actor: Actor, today: date, tz: ZoneInfo, days: int
) -> Figures:
    """The portfolio and the last `days` days of collections, consistent with each other."""
    book = portfolio(session, actor=actor, today=today, tz=tz)
    return Figures(book, collections_by_day(session, actor=actor, today=today, tz=tz, days=days))
