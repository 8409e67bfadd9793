"""The figures of the dashboards (the Telegram Mini App): aggregate SQL, never a loop per loan.

The book and this month's collections come from db.services.reports (one pass over the
active loans); the month trend, the leaderboard's promises and contacts and the delivery
figures are grouped queries of their own. Money is summed in minor units, as in reports.
Everything an agent does is credited to the agent holding the loan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, case, func, select
from sqlalchemy.orm import Session

from db import clock
from db.models import Contact, Loan, Message, MessageKind, Payment, Promise, PromiseState, Role
from db.models import MessageStatus as S
from db.money import q
from db.services.access import LIVE_LOAN, Actor, require_role, scope_loans
from db.services.reports import Portfolio, portfolio
from db.services.sms.deliveries import FailureLine, failure_counts

ZERO = Decimal("0")
CURRENT = "current"
FINISHED = (S.DELIVERED, S.UNDELIVERED, S.FAILED)
SENT_ON = (S.SENT, S.DELIVERED, S.UNDELIVERED, S.FAILED)


def _cents(expr: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(func.round(expr * 100)), 0)


def _money(cents: Decimal | int | None) -> Decimal:
    return q(Decimal(int(cents or 0)).scaleb(-2))


def month_starts(today: date, months: int) -> list[date]:
    """The first days of the last `months` months, oldest first, this month last."""
    year, month = today.year, today.month
    firsts = []
    for _ in range(months):
        firsts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return firsts[::-1]


# --- portfolio -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthTotal:
    month: date  # its first day
    collected: Decimal


@dataclass(frozen=True)
class Overview:
    book: Portfolio
    collected_month: Decimal
    collected_last_month: Decimal
    trend: tuple[MonthTotal, ...]  # oldest first, this month (to date) last


def monthly_collections(
    session: Session, *, actor: Actor, today: date, tz: ZoneInfo, months: int = 6
) -> tuple[MonthTotal, ...]:
    """Money collected in each of the last months (this one to today), reversals netted."""
    months = max(1, min(months, 24))
    firsts = month_starts(today, months)
    edges = [clock.day_start(d, tz) for d in firsts] + [
        clock.day_start(today + timedelta(days=1), tz)
    ]
    index = case(*[(Payment.paid_at < edges[i + 1], i) for i in range(months)], else_=months)
    inner = (
        select(index.label("i"), Payment.amount.label("amount"))
        .join(Loan, Loan.id == Payment.loan_id)
        .where(Payment.paid_at >= edges[0], Payment.paid_at < edges[-1], LIVE_LOAN)
    )
    sub = scope_loans(inner, actor).subquery()
    rows = session.execute(select(sub.c.i, _cents(sub.c.amount)).group_by(sub.c.i))
    totals = {int(i): _money(c) for i, c in rows}
    return tuple(MonthTotal(d, totals.get(i, q(ZERO))) for i, d in enumerate(firsts))


def overview(
    session: Session, *, actor: Actor, today: date, tz: ZoneInfo, months: int = 6
) -> Overview:
    """The portfolio page: the book, this month against last, and the monthly trend."""
    book = portfolio(session, actor=actor, today=today, tz=tz)
    trend = monthly_collections(session, actor=actor, today=today, tz=tz, months=max(2, months))
    return Overview(book, trend[-1].collected, trend[-2].collected, trend)


# --- days past due ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BucketLine:
    label: str  # "current", "1-30", "31-60", "61-90", "90+"
    loans: int
    outstanding: Decimal
    share: Decimal  # percent of the outstanding book, one decimal


def dpd_buckets(book: Portfolio) -> tuple[BucketLine, ...]:
    """The active book by days past due: current first, then the overdue buckets."""
    overdue = sum((amount for _, amount in book.overdue_by_bucket.values()), ZERO)
    cells = [(CURRENT, book.loans_active - book.overdue_loans, book.outstanding - overdue)]
    cells += [(label, n, amount) for label, (n, amount) in book.overdue_by_bucket.items()]
    total = book.outstanding

    def share(amount: Decimal) -> Decimal:
        return (amount * 100 / total).quantize(Decimal("0.1")) if total else ZERO

    return tuple(BucketLine(label, n, q(amount), share(amount)) for label, n, amount in cells)


# --- agents ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentScore:
    agent_id: int | None
    name: str
    loans: int
    outstanding: Decimal
    collected_month: Decimal
    promises_kept: int
    promises_broken: int
    contacts: int


def _counts_by_agent(session: Session, stmt: Select[Any]) -> dict[int | None, tuple[int, ...]]:
    return {row[0]: tuple(int(v or 0) for v in row[1:]) for row in session.execute(stmt)}


def leaderboard(
    session: Session, *, actor: Actor, today: date, tz: ZoneInfo, book: Portfolio | None = None
) -> tuple[AgentScore, ...]:
    """Per agent this month: collected, promises kept and broken, contacts; loans held now."""
    require_role(actor, Role.MANAGER, "see the agent leaderboard")
    book = book or portfolio(session, actor=actor, today=today, tz=tz)
    start = clock.day_start(today.replace(day=1), tz)
    end = clock.day_start(today + timedelta(days=1), tz)
    kept = func.sum(case((Promise.state == PromiseState.KEPT, 1), else_=0))
    broken = func.sum(case((Promise.state == PromiseState.BROKEN, 1), else_=0))
    promises = _counts_by_agent(
        session,
        select(Loan.agent_id, kept, broken)
        .select_from(Promise)
        .join(Loan, Loan.id == Promise.loan_id)
        .where(Promise.resolved_at >= start, Promise.resolved_at < end, LIVE_LOAN)
        .group_by(Loan.agent_id),
    )
    contacts = _counts_by_agent(
        session,
        select(Loan.agent_id, func.count())
        .select_from(Contact)
        .join(Loan, Loan.id == Contact.loan_id)
        .where(Contact.created_at >= start, Contact.created_at < end, LIVE_LOAN)
        .group_by(Loan.agent_id),
    )
    scores = [
        AgentScore(
            line.agent_id,
            line.name,
            line.loans,
            line.outstanding,
            line.collected_month,
            promises.get(line.agent_id, (0, 0))[0],
            promises.get(line.agent_id, (0, 0))[1],
            contacts.get(line.agent_id, (0,))[0],
        )
        for line in book.per_agent
    ]
    return tuple(sorted(scores, key=lambda s: (-s.collected_month, -s.promises_kept, s.name)))


# --- deliveries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindLine:
    kind: str
    messages: int
    delivered: int
    failed: int
    segments: int  # billed segments of the messages that went out


@dataclass(frozen=True)
class DeliveryOverview:
    since: datetime
    days: int
    messages: int
    delivered: int
    finished: int
    pending: int
    delivery_rate: Decimal | None  # percent, one decimal; None when nothing finished
    segments: int
    by_kind: tuple[KindLine, ...]
    failures: tuple[FailureLine, ...]


def _kind_line(kind: str, rows: list[tuple[MessageKind, S, int, int]]) -> KindLine:
    own = [r for r in rows if r[0] == kind]
    return KindLine(
        kind,
        sum(r[2] for r in own),
        sum(r[2] for r in own if r[1] == S.DELIVERED),
        sum(r[2] for r in own if r[1] in (S.FAILED, S.UNDELIVERED)),
        sum(r[3] for r in own),
    )


def delivery_overview(
    session: Session, *, actor: Actor, now: datetime, days: int = 7
) -> DeliveryOverview:
    """SMS created in the last days: delivery rate, segments by kind, failures by reason."""
    require_role(actor, Role.MANAGER, "see the delivery figures")
    days = max(1, min(days, 90))
    since = now - timedelta(days=days)
    segments = func.sum(case((Message.status.in_(SENT_ON), func.coalesce(Message.segments, 1))))
    stmt = (
        select(Message.kind, Message.status, func.count(), segments)
        .where(Message.created_at >= since, Message.created_at <= now)
        .group_by(Message.kind, Message.status)
    )
    rows: list[tuple[MessageKind, S, int, int]] = [
        (k, s, int(n), int(seg or 0)) for k, s, n, seg in session.execute(stmt)
    ]
    delivered = sum(r[2] for r in rows if r[1] == S.DELIVERED)
    finished = sum(r[2] for r in rows if r[1] in FINISHED)
    pending = sum(r[2] for r in rows if r[1] in (S.QUEUED, S.SENDING, S.SENT))
    rate = (Decimal(100 * delivered) / finished).quantize(Decimal("0.1")) if finished else None
    failures = failure_counts(session, Message.created_at >= since, Message.created_at <= now)
    return DeliveryOverview(
        since=since,
        days=days,
        messages=sum(r[2] for r in rows),
        delivered=delivered,
        finished=finished,
        pending=pending,
        delivery_rate=rate,
        segments=sum(r[3] for r in rows),
        by_kind=tuple(_kind_line(k.value, rows) for k in MessageKind),
        failures=tuple(failures),
    )
