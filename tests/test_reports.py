"""Reports: portfolio totals and buckets, collections in the agency's zone, the work list."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from db.models import Frequency, LoanState, Payment, PaymentMethod, Role
from db.services import reports
from db.services.collection import ledger, payments, promises
from tests.factories import actor, make_loan, make_staff

TODAY = date(2026, 3, 15)
IST = ZoneInfo("Asia/Kolkata")
D = Decimal
EMPTY = {b.value: (0, D("0.00")) for b in ledger.Bucket}


@pytest.fixture
def team(session):
    return {
        "a": make_staff(session, role=Role.AGENT, name="Asha"),
        "b": make_staff(session, role=Role.AGENT, name="Bala"),
        "m": make_staff(session, role=Role.MANAGER, name="Mira"),
    }


def _loan(session, agent, principal, first_due, count=1):
    return make_loan(
        session,
        agent=agent,
        principal=D(principal),
        count=count,
        frequency=Frequency.WEEKLY,
        first_due=first_due,
    )


def _pay(session, staff, loan, amount):
    payments.record_payment(
        session, actor=actor(staff), loan_number=loan.loan_number, amount=D(amount), today=TODAY
    )


@pytest.fixture
def book(session, team):
    """Asha: a current loan part paid, one 10 days late, one closed. Bala: 45 and 100 late."""
    a, b = team["a"], team["b"]
    current = _loan(session, a, "10000.00", TODAY + timedelta(days=1), count=4)
    _pay(session, a, current, "2500.00")
    late = _loan(session, a, "5000.00", TODAY - timedelta(days=10))
    closed = _loan(session, a, "1000.00", TODAY + timedelta(days=3))
    _pay(session, a, closed, "1000.00")
    b45 = _loan(session, b, "20000.00", TODAY - timedelta(days=45))
    _pay(session, b, b45, "1000.00")
    b100 = _loan(session, b, "3000.00", TODAY - timedelta(days=100))
    b100.installments[0].fee_due = D("150.00")
    ledger.refresh(b100)
    session.flush()
    assert closed.state == LoanState.CLOSED
    return {"current": current, "late": late, "b45": b45, "b100": b100}


def test_an_agents_portfolio_is_their_own_whatever_agent_id_says(session, team, book):
    mine = reports.portfolio(
        session, actor=actor(team["a"]), today=TODAY, tz=IST, agent_id=team["b"].id
    )
    assert (mine.loans_active, mine.borrowed, mine.repaid, mine.outstanding) == (
        2,
        D("15000.00"),
        D("2500.00"),
        D("12500.00"),
    )
    assert mine.overdue_loans == 1
    assert mine.overdue_by_bucket == EMPTY | {"1-30": (1, D("5000.00"))}
    assert mine.per_agent == ()


def test_a_manager_sees_one_agent_or_everyone_with_lines_per_agent(session, team, book):
    bala = reports.portfolio(
        session, actor=actor(team["m"]), today=TODAY, tz=IST, agent_id=team["b"].id
    )
    assert (bala.loans_active, bala.borrowed, bala.repaid, bala.outstanding) == (
        2,
        D("23150.00"),
        D("1000.00"),
        D("22150.00"),
    )
    assert bala.overdue_loans == 2
    assert bala.overdue_by_bucket == EMPTY | {"31-60": (1, D("19000.00")), "90+": (1, D("3150.00"))}
    everyone = reports.portfolio(session, actor=actor(team["m"]), today=TODAY, tz=IST)
    lines = {line.agent_id: line for line in everyone.per_agent}
    asha, bala_line = lines[team["a"].id], lines[team["b"].id]
    assert (asha.name, asha.loans, asha.outstanding, asha.overdue) == ("Asha", 2, D("12500.00"), 1)
    assert (bala_line.name, bala_line.loans, bala_line.outstanding, bala_line.overdue) == (
        "Bala",
        2,
        D("22150.00"),
        2,
    )
    assert everyone.loans_active == sum(line.loans for line in everyone.per_agent)
    assert everyone.outstanding == sum((line.outstanding for line in everyone.per_agent), D(0))


def test_portfolio_runs_a_fixed_number_of_queries(session, team, book):
    statements = []
    conn = session.connection()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(conn, "before_cursor_execute", listener)
    try:
        reports.portfolio(session, actor=actor(team["m"]), today=TODAY, tz=IST)
        before = len(statements)
        for _ in range(5):
            _loan(session, team["a"], "100.00", TODAY - timedelta(days=3))
        statements.clear()
        reports.portfolio(session, actor=actor(team["m"]), today=TODAY, tz=IST)
    finally:
        event.remove(conn, "before_cursor_execute", listener)
    assert len(statements) == before <= 4


def _at(day: date, hour: int, minute: int) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=IST)


@pytest.fixture
def takings(session, team, book):
    """Payment rows at chosen instants (IST) around the day's and the month's edges."""
    rows = [
        (book["current"], "500.00", _at(TODAY - timedelta(days=1), 23, 30)),  # yesterday
        (book["current"], "700.00", _at(TODAY, 0, 30)),  # today, though yesterday in UTC
        (book["late"], "300.00", _at(TODAY, 12, 0)),
        (book["current"], "-200.00", _at(TODAY, 13, 0)),  # a reversal nets out
        (book["current"], "1000.00", _at(date(2026, 2, 28), 23, 50)),  # last month
        (book["current"], "400.00", _at(date(2026, 3, 1), 0, 10)),
        (book["b45"], "900.00", _at(TODAY, 10, 0)),
    ]
    for loan, amount, when in rows:
        session.add(
            Payment(loan_id=loan.id, amount=D(amount), method=PaymentMethod.CASH, paid_at=when)
        )
    session.flush()


def test_collected_today_and_this_month_in_the_agency_zone(session, team, takings):
    asha = reports.portfolio(session, actor=actor(team["a"]), today=TODAY, tz=IST)
    assert (asha.collected_today, asha.collected_month) == (D("800.00"), D("1700.00"))
    bala = reports.portfolio(
        session, actor=actor(team["m"]), today=TODAY, tz=IST, agent_id=team["b"].id
    )
    assert (bala.collected_today, bala.collected_month) == (D("900.00"), D("900.00"))
    everyone = reports.portfolio(session, actor=actor(team["m"]), today=TODAY, tz=IST)
    lines = {line.agent_id: line.collected_month for line in everyone.per_agent}
    assert (lines[team["a"].id], lines[team["b"].id]) == (D("1700.00"), D("900.00"))
    utc = reports.portfolio(session, actor=actor(team["a"]), today=TODAY, tz=ZoneInfo("UTC"))
    assert utc.collected_today == D("100.00")  # 00:30 IST is still yesterday in UTC


def test_collections_by_day_has_every_day_and_matches_the_month(session, team, takings):
    days = reports.collections_by_day(session, actor=actor(team["a"]), today=TODAY, tz=IST, days=15)
    assert [d for d, _ in days] == [date(2026, 3, 1) + timedelta(days=i) for i in range(15)]
    totals = dict(days)
    assert (totals[date(2026, 3, 1)], totals[TODAY - timedelta(days=1)], totals[TODAY]) == (
        D("400.00"),
        D("500.00"),
        D("800.00"),
    )
    assert totals[date(2026, 3, 2)] == D("0.00")
    assert sum(totals.values()) == D("1700.00")
    short = reports.collections_by_day(
        session, actor=actor(team["m"]), today=TODAY, tz=IST, days=2, agent_id=team["b"].id
    )
    assert short == [(TODAY - timedelta(days=1), D("0.00")), (TODAY, D("900.00"))]


def _promise(session, staff, loan, made: date, due: date):
    return promises.record_promise(
        session,
        actor=actor(staff),
        loan_number=loan.loan_number,
        amount=D("100.00"),
        promised_date=due,
        today=made,
    )


def test_work_list_order_reasons_and_scope(session, team):
    a, b = team["a"], team["b"]
    later = TODAY + timedelta(days=5)
    due_today = _loan(session, a, "1000.00", TODAY)
    promised = _loan(session, a, "1000.00", later)
    _promise(session, a, promised, TODAY - timedelta(days=3), TODAY)
    broken = _loan(session, a, "1000.00", later)
    _promise(session, a, broken, TODAY - timedelta(days=5), TODAY - timedelta(days=2))
    promises.break_overdue_promises(session, today=TODAY)
    late20 = _loan(session, a, "1000.00", TODAY - timedelta(days=20))
    late5_promised = _loan(session, a, "1000.00", TODAY - timedelta(days=5))
    _promise(session, a, late5_promised, TODAY - timedelta(days=1), TODAY)
    late1 = _loan(session, a, "1000.00", TODAY - timedelta(days=1))
    superseded = _loan(session, a, "1000.00", later)
    _promise(session, a, superseded, TODAY - timedelta(days=6), TODAY - timedelta(days=4))
    _promise(session, a, superseded, TODAY - timedelta(days=6), TODAY + timedelta(days=10))
    others = _loan(session, b, "1000.00", TODAY)

    items = reports.work_list(session, actor=actor(a), today=TODAY)
    assert [(i.loan.loan_number, i.reason) for i in items] == [
        (due_today.loan_number, "due today"),
        # Within a reason the riskier loan first (risk.py): the overdue one's promise.
        (late5_promised.loan_number, "promise due today"),
        (promised.loan_number, "promise due today"),
        (broken.loan_number, "promise broken"),
        (late20.loan_number, "overdue 20 days"),
        (late1.loan_number, "overdue 1 day"),
    ]
    assert items[4].kind is reports.WorkReason.OVERDUE and items[4].loan.days_past_due == 20
    assert len(reports.work_list(session, actor=actor(a), today=TODAY, limit=2)) == 2
    everyone = reports.work_list(session, actor=actor(team["m"]), today=TODAY, limit=10_000)
    assert others.id in {i.loan.id for i in everyone}
    assert superseded.id not in {i.loan.id for i in everyone}


def test_portfolio_figures_are_the_portfolio_and_its_collections(session, team, book):
    who = actor(team["m"])
    figures = reports.portfolio_figures(session, actor=who, today=TODAY, tz=IST, days=7)
    assert figures.book == reports.portfolio(session, actor=who, today=TODAY, tz=IST)
    assert figures.days == reports.collections_by_day(
        session, actor=who, today=TODAY, tz=IST, days=7
    )
    assert len(figures.days) == 7
