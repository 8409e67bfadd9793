"""Each dashboard page: the services it asks and what its template shows.

A builder takes (session, actor, settings, query parameters) and returns (template, context);
it reads only (the caller never commits), and every figure comes from db/services.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from bot.miniapp.charts import bar_chart
from db import clock
from db.agency import agency_of
from db.config import Settings
from db.models import Role
from db.money import format_money
from db.services import dashboards
from db.services.access import Actor
from db.services.loans.search import LoanFilter, list_loans
from db.services.reports import collections_by_day, portfolio
from db.services.staff.members import list_staff

Builder = Callable[[Session, Actor, Settings, dict[str, str]], tuple[str, dict[str, Any]]]

COLLECTION_DAYS = (7, 30, 90)
DELIVERY_DAYS = (1, 7, 30)
LOAN_PAGE = 20
# The loan list's filters, in the order the page offers them (archived: the bot, admins).
LOAN_FILTERS = {
    LoanFilter.ACTIVE: "Active",
    LoanFilter.OVERDUE: "Overdue",
    LoanFilter.DUE_TODAY: "Due today",
    LoanFilter.BUCKET_1_30: "1-30 days",
    LoanFilter.BUCKET_31_60: "31-60 days",
    LoanFilter.BUCKET_61_90: "61-90 days",
    LoanFilter.BUCKET_90_PLUS: "90+ days",
    LoanFilter.CLOSED: "Closed",
    LoanFilter.WRITTEN_OFF: "Written off",
    LoanFilter.ALL: "All",
}


def _money_fmt(settings: Settings) -> Callable[[Decimal | int], str]:
    agency = agency_of(settings)
    return lambda v: format_money(Decimal(v), agency)


def _choice(query: dict[str, str], name: str, allowed: tuple[int, ...], default: int) -> int:
    text = query.get(name, "")
    return int(text) if text.isdigit() and int(text) in allowed else default


def portfolio_page(session, actor, settings, query):
    today = clock.today(settings.tz)
    view = dashboards.overview(session, actor=actor, today=today, tz=settings.tz)
    chart = bar_chart(
        [(f"{t.month:%b}", t.collected) for t in view.trend],
        fmt=_money_fmt(settings),
        caption="Collected per month (this month to date)",
    )
    return "portfolio.html", {"view": view, "chart": chart, "today": today, "tab": "portfolio"}


def dpd_page(session, actor, settings, query):
    today = clock.today(settings.tz)
    book = portfolio(session, actor=actor, today=today, tz=settings.tz)
    lines = dashboards.dpd_buckets(book)
    chart = bar_chart(
        [(line.label, line.outstanding) for line in lines],
        fmt=_money_fmt(settings),
        caption="Outstanding by days past due",
    )
    return "dpd.html", {"lines": lines, "book": book, "chart": chart, "tab": "dpd"}


def collections_page(session, actor, settings, query):
    today = clock.today(settings.tz)
    days = _choice(query, "days", COLLECTION_DAYS, 30)
    rows = collections_by_day(session, actor=actor, today=today, tz=settings.tz, days=days)
    chart = bar_chart(
        [(f"{d:%d}", amount) for d, amount in rows],
        fmt=_money_fmt(settings),
        caption=f"Collected per day, last {days} days",
        label_every=max(1, days // 6),
    )
    total = sum((amount for _, amount in rows), Decimal("0"))
    context = {"rows": rows[::-1], "chart": chart, "days": days, "total": total}
    return "collections.html", {**context, "choices": COLLECTION_DAYS, "tab": "collections"}


def agents_page(session, actor, settings, query):
    today = clock.today(settings.tz)
    scores = dashboards.leaderboard(session, actor=actor, today=today, tz=settings.tz)
    chart = bar_chart(
        [(s.name[:8], s.collected_month) for s in scores[:10]],
        fmt=_money_fmt(settings),
        caption="Collected this month, top agents",
    )
    return "agents.html", {"scores": scores, "chart": chart, "tab": "agents"}


def deliveries_page(session, actor, settings, query):
    days = _choice(query, "days", DELIVERY_DAYS, 7)
    view = dashboards.delivery_overview(session, actor=actor, now=clock.utcnow(), days=days)
    chart = bar_chart(
        [(k.kind, k.segments) for k in view.by_kind],
        fmt=str,
        caption="Segments sent by kind",
    )
    context = {"view": view, "chart": chart, "days": days, "choices": DELIVERY_DAYS}
    return "deliveries.html", {**context, "tab": "deliveries"}


def loans_page(session, actor, settings, query):
    today = clock.today(settings.tz)
    chosen = query.get("filter", "")
    filter_ = LoanFilter(chosen) if chosen in LOAN_FILTERS else LoanFilter.ACTIVE
    agents = [s for s in list_staff(session, actor=actor) if s.role is Role.AGENT]
    agent_text = query.get("agent", "")
    agent_id = int(agent_text) if agent_text.isdigit() else None
    page = list_loans(
        session,
        actor=actor,
        today=today,
        filter=filter_,
        agent_id=agent_id,
        after=query.get("after") or None,
        limit=LOAN_PAGE,
        tz=settings.tz,
    )
    names = {s.id: s.name for s in agents}
    context: dict[str, Any] = {
        "page": page,
        "filter": filter_.value,
        "filters": LOAN_FILTERS,
        "agents": agents,
    }
    context |= {"agent_id": agent_id, "names": names}
    return "loans.html", {**context, "tab": "loans"}


PAGES: dict[str, Builder] = {
    "portfolio": portfolio_page,
    "dpd": dpd_page,
    "collections": collections_page,
    "agents": agents_page,
    "deliveries": deliveries_page,
    "loans": loans_page,
}
