"""The dashboards' figures against the hand-worked agency of tests/dashboard_data.py."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from db.services import dashboards
from db.services.errors import AccessDenied
from db.services.reports import collections_by_day
from tests.dashboard_data import NOW, TODAY, TZ, make_agency
from tests.factories import actor


@pytest.fixture
def agency(session):
    return make_agency(session)


def test_month_starts_cross_the_year():
    firsts = dashboards.month_starts(date(2026, 2, 14), 3)
    assert firsts == [date(2025, 12, 1), date(2026, 1, 1), date(2026, 2, 1)]


def test_overview_this_month_against_last_and_the_trend(session, agency):
    view = dashboards.overview(session, actor=actor(agency.manager), today=TODAY, tz=TZ)
    assert view.book.outstanding == Decimal("19000.00")
    assert view.book.loans_active == 4
    assert view.collected_month == Decimal("1000.00")  # the 00:10 payment of 1 Dec counts
    assert view.collected_last_month == Decimal("200.00")  # 250 - 50; 999 archived
    assert [(t.month.month, t.collected) for t in view.trend] == [
        (7, Decimal("0.00")),
        (8, Decimal("0.00")),
        (9, Decimal("0.00")),
        (10, Decimal("100.00")),
        (11, Decimal("200.00")),
        (12, Decimal("1000.00")),
    ]


def test_an_agents_trend_has_only_their_loans(session, agency):
    trend = dashboards.monthly_collections(
        session, actor=actor(agency.bala), today=TODAY, tz=TZ, months=2
    )
    assert [t.collected for t in trend] == [Decimal("250.00"), Decimal("0.00")]


def test_dpd_buckets_current_first_with_shares(session, agency):
    view = dashboards.overview(session, actor=actor(agency.admin), today=TODAY, tz=TZ)
    lines = dashboards.dpd_buckets(view.book)
    assert [(b.label, b.loans, b.outstanding, b.share) for b in lines] == [
        ("current", 1, Decimal("9000.00"), Decimal("47.4")),
        ("1-30", 1, Decimal("5000.00"), Decimal("26.3")),
        ("31-60", 1, Decimal("2000.00"), Decimal("10.5")),
        ("61-90", 0, Decimal("0.00"), Decimal("0.0")),
        ("90+", 1, Decimal("3000.00"), Decimal("15.8")),
    ]


def test_collections_by_day_come_from_reports(session, agency):
    days = collections_by_day(session, actor=actor(agency.manager), today=TODAY, tz=TZ, days=7)
    assert days[0] == (date(2026, 12, 1), Decimal("600.00"))
    assert days[-1] == (TODAY, Decimal("400.00"))
    assert sum(amount for _, amount in days) == Decimal("1000.00")


def test_leaderboard_per_agent_this_month(session, agency):
    scores = dashboards.leaderboard(session, actor=actor(agency.manager), today=TODAY, tz=TZ)
    got = [
        (s.name, s.loans, s.outstanding, s.collected_month, s.promises_kept, s.promises_broken)
        for s in scores
    ]
    assert got == [
        ("Asha", 2, Decimal("14000.00"), Decimal("1000.00"), 1, 1),
        ("Bala", 2, Decimal("5000.00"), Decimal("0.00"), 1, 0),
    ]
    assert [s.contacts for s in scores] == [2, 1]


def test_delivery_overview_last_seven_days(session, agency):
    view = dashboards.delivery_overview(session, actor=actor(agency.manager), now=NOW)
    assert (view.messages, view.delivered, view.finished, view.pending) == (6, 2, 4, 2)
    assert view.delivery_rate == Decimal("50.0")
    assert view.segments == 8  # the queued one has none yet; the failed one counts as 1
    kinds = {k.kind: (k.messages, k.delivered, k.failed, k.segments) for k in view.by_kind}
    assert kinds == {
        "reminder": (3, 2, 1, 4),
        "notice": (2, 0, 1, 1),
        "broadcast": (1, 0, 0, 3),
        "reply": (0, 0, 0, 0),
    }
    assert sorted((f.code, f.count) for f in view.failures) == [("30003", 1), ("30005", 1)]


def test_agents_get_no_leaderboard_and_no_deliveries(session, agency):
    with pytest.raises(AccessDenied):
        dashboards.leaderboard(session, actor=actor(agency.asha), today=TODAY, tz=TZ)
    with pytest.raises(AccessDenied):
        dashboards.delivery_overview(session, actor=actor(agency.asha), now=NOW)


def test_an_empty_book_gives_zeros_not_errors(session, manager):
    view = dashboards.overview(session, actor=actor(manager), today=TODAY, tz=TZ)
    assert view.collected_month == view.collected_last_month == Decimal("0.00")
    assert all(b.share == 0 for b in dashboards.dpd_buckets(view.book))
    deliveries = dashboards.delivery_overview(session, actor=actor(manager), now=NOW)
    assert deliveries.delivery_rate is None and deliveries.messages == 0
