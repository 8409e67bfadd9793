"""Delivery reports for admins: messages by status and kind, the top errors in plain words.

Delivery rate = delivered / (delivered + undelivered + failed): only messages whose fate is
known count; SENT ones still waiting for the carrier's report are shown apart (pending).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from db.models import (
    Message,
    MessageKind,
    Role,
)
from db.models import MessageStatus as S
from db.services.access import Actor, require_role
from db.services.sms.suppressions import SuppressionInfo, list_suppressed

FAILED = (S.FAILED, S.UNDELIVERED)
TOP_ERRORS = 5


# --- failures by reason -------------------------------------------------------------------

# A failure the worker gave no words for (e.g. a send abandoned after a worker stopped).
NO_REASON = "no reason recorded"


@dataclass(frozen=True)
class FailureLine:
    code: str | None  # the provider's reference, shown as it came (never read here)
    count: int
    words: str  # message.failure_reason: the worker's plain words for the failure


def failure_counts(
    session: Session, *where: ColumnElement[bool], limit: int | None = None
) -> list[FailureLine]:
    """Failed and undelivered messages matching where, counted by reason, most common first."""
    reason, code = Message.failure_reason, Message.error_code
    n = func.count().label("n")
    stmt = (
        select(reason, code, n)
        .where(Message.status.in_(FAILED), *where)
        .group_by(reason, code)
        .order_by(n.desc(), reason, code)
    )
    rows = session.execute(stmt.limit(limit)).all()
    return [FailureLine(c, int(k), r or NO_REASON) for r, c, k in rows]


# --- delivery report ----------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodCounts:
    since: datetime
    by_kind: dict[str, dict[str, int]]  # kind -> status -> count (every status present)
    totals: dict[str, int]  # status -> count
    delivered: int
    finished: int  # delivered + undelivered + failed
    pending: int  # queued, sending, or sent without a final report
    delivery_rate: Decimal | None  # percent, one decimal; None when nothing finished


@dataclass(frozen=True)
class DeliveryReport:
    now: datetime
    day: PeriodCounts
    week: PeriodCounts
    top_errors: tuple[FailureLine, ...]  # last 7 days


def _period(since: datetime, counts: dict[tuple[str, str], int]) -> PeriodCounts:
    by_kind = {k.value: {s.value: counts.get((k, s), 0) for s in S} for k in MessageKind}
    totals = {s.value: sum(per[s.value] for per in by_kind.values()) for s in S}
    delivered = totals[S.DELIVERED]
    finished = delivered + totals[S.UNDELIVERED] + totals[S.FAILED]
    pending = totals[S.QUEUED] + totals[S.SENDING] + totals[S.SENT]
    rate = None
    if finished:
        rate = (Decimal(100 * delivered) / finished).quantize(Decimal("0.1"))
    return PeriodCounts(since, by_kind, totals, delivered, finished, pending, rate)


def delivery_report(session: Session, *, actor: Actor, now: datetime) -> DeliveryReport:
    """Messages created in the last day and 7 days, by kind and status, and the top errors."""
    require_role(actor, Role.ADMIN, "read delivery reports")
    day_ago, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    in_day = func.coalesce(func.sum(case((Message.created_at >= day_ago, 1), else_=0)), 0)
    rows = session.execute(
        select(Message.kind, Message.status, func.count(), in_day)
        .where(Message.created_at >= week_ago, Message.created_at <= now)
        .group_by(Message.kind, Message.status)
    ).all()
    week = {(k, s): int(n) for k, s, n, _ in rows}
    day = {(k, s): int(d) for k, s, _, d in rows}
    top = failure_counts(
        session, Message.created_at >= week_ago, Message.created_at <= now, limit=TOP_ERRORS
    )
    return DeliveryReport(now, _period(day_ago, day), _period(week_ago, week), tuple(top))


# --- one reminder now ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveriesOverview:
    """What /deliveries shows: the report, and the newest suppressed numbers."""

    report: DeliveryReport
    suppressed: list[SuppressionInfo]


def deliveries_overview(
    session: Session, *, actor: Actor, now: datetime, suppressed_limit: int
) -> DeliveriesOverview:
    """The delivery report and the latest suppressed_limit suppressed numbers (admins)."""
    report = delivery_report(session, actor=actor, now=now)
    return DeliveriesOverview(report, list_suppressed(session, actor=actor, limit=suppressed_limit))
