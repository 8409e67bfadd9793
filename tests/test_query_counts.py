"""Statements per request (counts, never times): a fixed handful, whatever the book's size.

Each request runs on a fresh identity map, as a bot or web request does, then again after
the book has grown: the count must not move (no N+1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from db import clock
from db.models import ContactChannel, ContactOutcome, Frequency, Role
from db.services import reports
from db.services.collection import payments, promises
from db.services.loans.add import get_loan
from db.services.loans.history import loan_history
from db.services.loans.search import LoanFilter, list_loans, search_loans
from tests.factories import actor, make_borrower, make_loan, make_staff

TZ = ZoneInfo("Asia/Kolkata")
# The history reads the loan, then one statement per source (events, payments, promises,
# contacts, SMS, replies).
HISTORY_STATEMENTS = 7
# One statement per reason: disputed, hardship pause, due today, promise due, promise broken,
# overdue.
WORK_LIST_STATEMENTS = 6


class Counter:
    """Statements the test engine sends to the database while counting."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, _conn, _cursor, statement, *_rest) -> None:
        self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@contextmanager
def counting(engine) -> Iterator[Counter]:
    counter = Counter()
    event.listen(engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", counter)


@pytest.fixture
def today() -> date:
    return clock.today(TZ)


@pytest.fixture
def team(session):
    return {
        "a": make_staff(session, role=Role.AGENT, name="Asha"),
        "b": make_staff(session, role=Role.AGENT, name="Bala"),
        "m": make_staff(session, role=Role.MANAGER, name="Mira"),
    }


def _grow(session, team, today: date, n: int, tag: str) -> list:
    """n loans per agent, due, overdue and ahead, each with a payment, promise and contact."""
    loans = []
    for i in range(n):
        for agent in (team["a"], team["b"]):
            borrower = make_borrower(session, name=f"Sunita {tag}{i}")
            first_due = today + timedelta(days=(i % 3 - 1) * 20)
            loan = make_loan(
                session,
                agent=agent,
                borrower=borrower,
                count=3,
                frequency=Frequency.MONTHLY,
                first_due=first_due,
            )
            who = actor(agent)
            payments.record_payment(
                session,
                actor=who,
                loan_number=loan.loan_number,
                amount=Decimal("10.00"),
                today=today,
            )
            promises.record_promise(
                session,
                actor=who,
                loan_number=loan.loan_number,
                amount=Decimal("20.00"),
                promised_date=today,
                today=today,
            )
            promises.record_contact(
                session,
                actor=who,
                loan_number=loan.loan_number,
                channel=ContactChannel.CALL,
                outcome=ContactOutcome.PROMISED,
                note=None,
            )
            loans.append(loan)
    session.flush()
    return loans


def _count(session, engine, request: Callable[[], object]) -> int:
    """Statements request sends, starting from an empty identity map (as a new request)."""
    session.flush()
    session.expunge_all()
    with counting(engine) as counter:
        request()
    return counter.count


def _twice(session, engine, team, today, request: Callable[[], object]) -> tuple[int, int]:
    """The count of request on a small book, then on one with three times as many loans."""
    small = _count(session, engine, request)
    _grow(session, team, today, 6, "more")
    return small, _count(session, engine, request)


@pytest.fixture
def book(session, team, today):
    return _grow(session, team, today, 3, "")


# ARCHIVED is for admins only (tests/test_archive.py); it is the same single statement.
@pytest.mark.parametrize("filter", [f for f in LoanFilter if f is not LoanFilter.ARCHIVED])
@pytest.mark.parametrize("who", ["a", "m"])
def test_a_list_page_is_one_statement_for_every_filter(
    session, engine, team, today, book, filter, who
):
    def request() -> object:
        page = list_loans(session, actor=actor(team[who]), today=today, filter=filter, limit=3)
        return [(item.borrower_name, item.outstanding) for item in page.items]

    assert _twice(session, engine, team, today, request) == (1, 1)


def test_following_and_going_back_a_page_and_counting_the_total(session, engine, team, today, book):
    manager = actor(team["m"])
    first = list_loans(session, actor=manager, today=today, filter=LoanFilter.ALL, limit=2)
    second = list_loans(
        session, actor=manager, today=today, filter=LoanFilter.ALL, limit=2, after=first.next_cursor
    )
    assert (
        _count(
            session,
            engine,
            lambda: list_loans(
                session,
                actor=manager,
                today=today,
                filter=LoanFilter.ALL,
                limit=2,
                after=first.next_cursor,
            ),
        )
        == 1
    )
    assert (
        _count(
            session,
            engine,
            lambda: list_loans(
                session,
                actor=manager,
                today=today,
                filter=LoanFilter.ALL,
                limit=2,
                before=second.prev_cursor,
            ),
        )
        == 1
    )
    assert (
        _count(
            session,
            engine,
            lambda: list_loans(
                session,
                actor=manager,
                today=today,
                limit=2,
                with_total=True,
                agent_id=team["a"].id,
                created_from=today - timedelta(days=1),
                updated_to=today,
                tz=TZ,
            ),
        )
        == 2
    )


@pytest.mark.parametrize(
    ("text", "statements"),
    [
        ("sunita m", 1),  # a name prefix only
        ("+919800000001", 1),  # a phone only
        ("sunita", 2),  # one word: a loan number or a name prefix
        ("9800000001", 2),  # digits: a loan number or a phone
    ],
)
def test_a_search_is_one_statement_per_kind_of_match(
    session, engine, team, today, book, text, statements
):
    def request() -> object:
        items, _more = search_loans(session, actor=actor(team["m"]), text=text, today=today)
        return [item.borrower_name for item in items]

    assert _twice(session, engine, team, today, request) == (statements, statements)


def test_a_card_is_two_statements_with_its_promise_and_contact(session, engine, team, today, book):
    loan = book[0]

    def request() -> object:
        card = get_loan(session, actor=actor(team["m"]), loan_number=loan.loan_number, today=today)
        assert card.open_promise is not None and card.last_contact is not None
        assert card.agent_name == "Asha" and card.installments_paid == 0
        return card

    assert _twice(session, engine, team, today, request) == (2, 2)


@pytest.mark.parametrize("who", ["a", "m"])
def test_portfolio_is_two_statements_for_an_agent_and_a_manager(
    session, engine, team, today, book, who
):
    def request() -> reports.Portfolio:
        return reports.portfolio(session, actor=actor(team[who]), today=today, tz=TZ)

    small = request()
    counts = _twice(session, engine, team, today, request)
    assert request().loans_active == 3 * small.loans_active  # the book did grow
    assert counts == (2, 2)
    assert bool(request().per_agent) is (who == "m")


def test_a_history_page_is_one_statement_per_source(session, engine, team, today, book):
    loan = book[0]
    who = actor(team["a"])
    for _ in range(12):
        promises.record_contact(
            session,
            actor=who,
            loan_number=loan.loan_number,
            channel=ContactChannel.VISIT,
            outcome=ContactOutcome.NO_ANSWER,
            note=None,
        )

    def request() -> object:
        page = loan_history(session, actor=who, loan_number=loan.loan_number, limit=10)
        assert len(page.items) == 10 and page.next_cursor
        return page

    assert _twice(session, engine, team, today, request) == (HISTORY_STATEMENTS,) * 2
    page = loan_history(session, actor=who, loan_number=loan.loan_number, limit=10)
    assert (
        _count(
            session,
            engine,
            lambda: loan_history(
                session, actor=who, loan_number=loan.loan_number, limit=10, before=page.next_cursor
            ),
        )
        == HISTORY_STATEMENTS
    )


def test_the_work_list_is_one_statement_per_reason(session, engine, team, today, book):
    def request() -> object:
        items = reports.work_list(session, actor=actor(team["a"]), today=today, limit=100)
        assert items
        return [item.loan.borrower_name for item in items]

    assert _twice(session, engine, team, today, request) == (WORK_LIST_STATEMENTS,) * 2
