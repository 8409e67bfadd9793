"""Loan search, keyset-paged lists with filters and buckets, and the merged loan history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from db import clock
from db.agency import Agency
from db.models import (
    Contact,
    ContactChannel,
    ContactOutcome,
    InboundMessage,
    LoanState,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    Payment,
    PaymentMethod,
    Promise,
)
from db.services.collection import ledger
from db.services.errors import AccessDenied, InvalidInput, NotFound
from db.services.loans.add import EditableField, add_loan, edit_loan, reassign_loan
from db.services.loans.cards import loan_with_history
from db.services.loans.history import loan_history
from db.services.loans.search import LoanFilter, list_loans, search_loans
from tests.factories import actor, make_borrower, make_loan


def loan_for(session, agent, name, phone=None, **kw):
    return make_loan(
        session, agent=agent, borrower=make_borrower(session, name=name, phone=phone), **kw
    )


# -- search -------------------------------------------------------------------------------------


def test_search_by_number_phone_and_name(session, agent_a, today):
    ravi = loan_for(session, agent_a, "Ravi Kumar", "+919876543210", loan_number="RAVI-1")
    rajesh = loan_for(session, agent_a, "rajesh Shah")
    loan_for(session, agent_a, "Sita Devi", loan_number="RA-9")
    who = actor(agent_a)

    def numbers(text, **kw):
        items, _ = search_loans(session, actor=who, text=text, today=today, **kw)
        return [i.loan_number for i in items]

    assert numbers("ravi-1") == ["RAVI-1"]
    for phone in ("+91 98765 43210", "09876543210", "9876543210"):
        assert numbers(phone) == [ravi.loan_number]
    assert numbers("RA") == [rajesh.loan_number, ravi.loan_number]  # by name, case-insensitive
    assert numbers("ra-9") == ["RA-9"]  # the exact number, though no name starts with it
    assert numbers("Ravi K") == ["RAVI-1"]
    assert numbers("nobody") == []


def test_search_puts_the_exact_number_first(session, agent_a, today):
    loan_for(session, agent_a, "Aaron Abel", loan_number="ZED-1")
    loan_for(session, agent_a, "Zed Brown", loan_number="T-ZED-2")
    items, _ = search_loans(session, actor=actor(agent_a), text="zed-1", today=today)
    assert [i.loan_number for i in items] == ["ZED-1"]
    loan_for(session, agent_a, "Zed-1 Person", loan_number="T-ZED-3")
    items, _ = search_loans(session, actor=actor(agent_a), text="zed-1", today=today)
    assert [i.loan_number for i in items] == ["ZED-1", "T-ZED-3"]


def test_search_escapes_wildcards(session, agent_a, today):
    loan_for(session, agent_a, "Ab Kumar")
    percent = loan_for(session, agent_a, "A%b Singh")
    items, _ = search_loans(session, actor=actor(agent_a), text="a%", today=today)
    assert [i.id for i in items] == [percent.id]
    items, _ = search_loans(session, actor=actor(agent_a), text="a_", today=today)
    assert items == []


def test_search_pages_and_scope(session, agent_a, agent_b, today):
    mine = [loan_for(session, agent_a, f"Qadir Zafar {i}").id for i in range(5)]
    loan_for(session, agent_b, "Qadir Zafar other")
    seen, offset, more = [], 0, True
    while more:
        items, more = search_loans(
            session, actor=actor(agent_a), text="qadir", today=today, limit=2, offset=offset
        )
        seen += [i.id for i in items]
        offset += 2
    assert seen == mine
    items, more = search_loans(session, actor=actor(agent_b), text="qadir", today=today)
    assert [i.agent_id for i in items] == [agent_b.id] and not more


def test_search_refuses_empty_text(session, agent_a, today):
    with pytest.raises(InvalidInput):
        search_loans(session, actor=actor(agent_a), text="   ", today=today)


def test_search_hides_other_agents_loans(session, agent_a, agent_b, today):
    loan_for(session, agent_a, "Hidden Person", "+919812345678", loan_number="T-HIDE")
    for text in ("T-HIDE", "Hidden", "9812345678"):
        items, more = search_loans(session, actor=actor(agent_b), text=text, today=today)
        assert items == [] and not more


# -- lists --------------------------------------------------------------------------------------


@pytest.fixture
def portfolio(session, agent_a, today):
    """One loan per state/bucket for agent_a, keyed by what it should be listed as."""
    loans = {
        "future": make_loan(session, agent=agent_a, first_due=today + timedelta(days=3)),
        "today": make_loan(session, agent=agent_a, first_due=today),
        "d1": make_loan(session, agent=agent_a, first_due=today - timedelta(days=1)),
        "d30": make_loan(session, agent=agent_a, first_due=today - timedelta(days=30)),
        "d31": make_loan(session, agent=agent_a, first_due=today - timedelta(days=31)),
        "d75": make_loan(session, agent=agent_a, first_due=today - timedelta(days=75)),
        "d90": make_loan(session, agent=agent_a, first_due=today - timedelta(days=90)),
        "d91": make_loan(session, agent=agent_a, first_due=today - timedelta(days=91)),
        "d400": make_loan(session, agent=agent_a, first_due=today - timedelta(days=400)),
        "closed": make_loan(session, agent=agent_a),
        "written_off": make_loan(session, agent=agent_a),
    }
    closed = loans["closed"]
    closed.installments[0].amount_paid = closed.amount_payable
    ledger.refresh(closed)
    closed.state = LoanState.CLOSED
    loans["written_off"].state = LoanState.WRITTEN_OFF
    session.flush()
    return {key: loan.id for key, loan in loans.items()}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (LoanFilter.ACTIVE, ["d400", "d91", "d90", "d75", "d31", "d30", "d1", "today", "future"]),
        (LoanFilter.OVERDUE, ["d400", "d91", "d90", "d75", "d31", "d30", "d1"]),
        (LoanFilter.DUE_TODAY, ["today"]),
        (LoanFilter.BUCKET_1_30, ["d30", "d1"]),
        (LoanFilter.BUCKET_31_60, ["d31"]),
        (LoanFilter.BUCKET_61_90, ["d90", "d75"]),
        (LoanFilter.BUCKET_90_PLUS, ["d400", "d91"]),
        (LoanFilter.CLOSED, ["closed"]),
        (LoanFilter.WRITTEN_OFF, ["written_off"]),
    ],
)
def test_filters_and_buckets(session, agent_a, today, portfolio, filter, expected):
    page = list_loans(
        session, actor=actor(agent_a), today=today, filter=filter, limit=50, with_total=True
    )
    assert [i.id for i in page.items] == [portfolio[k] for k in expected]
    assert page.total == len(expected) and page.next_cursor is None
    for item in page.items:
        assert item.days_past_due == ledger.days_past_due(item, today)


def test_all_lists_loans_without_a_due_date_last(session, agent_a, today, portfolio):
    page = list_loans(session, actor=actor(agent_a), today=today, filter=LoanFilter.ALL, limit=50)
    ids = [i.id for i in page.items]
    assert ids[-1] == portfolio["closed"] and len(ids) == len(portfolio)


def test_list_scope(session, agent_a, agent_b, manager, today, portfolio):
    assert list_loans(session, actor=actor(agent_b), today=today, filter=LoanFilter.ALL).items == []
    with pytest.raises(AccessDenied):
        list_loans(session, actor=actor(agent_b), today=today, agent_id=agent_a.id)
    page = list_loans(
        session,
        actor=actor(manager),
        today=today,
        agent_id=agent_a.id,
        filter=LoanFilter.OVERDUE,
        with_total=True,
    )
    assert page.total == 7 and {i.agent_id for i in page.items} == {agent_a.id}


def test_list_created_and_updated_ranges(session, agent_a, today):
    old = make_loan(session, agent=agent_a)
    old.created_at = old.updated_at = datetime(2024, 1, 10, 20, 0, tzinfo=UTC)  # 11 Jan in India
    new = make_loan(session, agent=agent_a)
    session.flush()
    ist, who = ZoneInfo("Asia/Kolkata"), actor(agent_a)
    day = old.created_at.astimezone(ist).date()

    def ids(**kw):
        return [i.id for i in list_loans(session, actor=who, today=today, tz=ist, **kw).items]

    assert ids(created_from=day, created_to=day) == [old.id]
    assert ids(created_from=day + timedelta(days=1)) == [new.id]
    assert ids(updated_to=day - timedelta(days=1)) == []
    assert set(ids(updated_from=day)) == {old.id, new.id}


def test_keyset_walks_every_row_once_forward_and_back(session, agent_a, today):
    expected = []
    for i in range(23):
        loan = make_loan(session, agent=agent_a, first_due=today - timedelta(days=i % 4))
        if i % 5 == 0:  # some without a next due date (settled)
            loan.installments[0].amount_paid = loan.amount_payable
            ledger.refresh(loan)
        expected.append(loan)
    session.flush()
    expected.sort(key=lambda x: (x.next_due_date is None, x.next_due_date or today, x.id))
    who = actor(agent_a)
    forward, cursor, pages = [], None, []
    while True:
        page = list_loans(
            session, actor=who, today=today, filter=LoanFilter.ALL, after=cursor, limit=5
        )
        pages.append(page)
        forward += [i.id for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert forward == [x.id for x in expected]
    assert len(pages) == 5 and pages[0].prev_cursor is None
    backward, page = [], pages[-1]
    backward = [i.id for i in page.items]
    while page.prev_cursor:
        page = list_loans(
            session, actor=who, today=today, filter=LoanFilter.ALL, before=page.prev_cursor, limit=5
        )
        backward = [i.id for i in page.items] + backward
    assert backward == forward
    assert page.items == pages[0].items


def test_list_is_one_query_per_page(session, engine, agent_a, today, portfolio):
    statements = []

    def count(*_args):
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        page = list_loans(session, actor=actor(agent_a), today=today, limit=3)
        [i.borrower_name for i in page.items]
        list_loans(session, actor=actor(agent_a), today=today, after=page.next_cursor, limit=3)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 2


@pytest.mark.parametrize("bad", ["garbage!", "MjAyNC0wMS0wMXx4", ""])
def test_bad_cursor_is_refused(session, agent_a, today, bad):
    with pytest.raises(InvalidInput) as err:
        list_loans(session, actor=actor(agent_a), today=today, after=bad or "x")
    assert err.value.code == "cursor"


def test_page_size_is_bounded(session, agent_a, today):
    with pytest.raises(InvalidInput):
        list_loans(session, actor=actor(agent_a), today=today, limit=0)
    with pytest.raises(InvalidInput):
        list_loans(session, actor=actor(agent_a), today=today, limit=101)


# -- history ------------------------------------------------------------------------------------


def test_history_merges_everything_newest_first(session, agent_a, manager, today):
    who = actor(agent_a)
    base = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
    clock.advance(base - clock.utcnow())
    view = add_loan(
        session,
        actor=who,
        phone="+91 98765 43210",
        name="Ravi Kumar",
        address=None,
        principal=Decimal("5000"),
        first_due=today + timedelta(days=10),
        today=today,
    )
    number = view.loan_number
    at = [base + timedelta(minutes=m) for m in range(10)]
    clock.advance(at[1] - clock.utcnow())
    edit_loan(
        session,
        actor=who,
        loan_number=number,
        field=EditableField.BORROWER_ADDRESS,
        value="12 MG Road",
        expected_version=None,
        today=today,
    )
    session.add_all(
        [
            Payment(
                loan_id=view.id,
                amount=Decimal("1500"),
                method=PaymentMethod.UPI,
                paid_at=at[2],
                recorded_by_id=agent_a.id,
            ),
            Promise(
                loan_id=view.id,
                amount=Decimal("500"),
                promised_date=today,
                made_by_id=agent_a.id,
                created_at=at[3],
            ),
            Contact(
                loan_id=view.id,
                channel=ContactChannel.CALL,
                outcome=ContactOutcome.NO_ANSWER,
                staff_id=agent_a.id,
                created_at=at[4],
            ),
            InboundMessage(
                from_phone="+919876543210",
                body="will pay friday",
                loan_id=view.id,
                received_at=at[6],
            ),
        ]
    )
    message = Message(
        to_phone="+919876543210",
        body="Reminder",
        kind=MessageKind.REMINDER,
        loan_id=view.id,
        idempotency_key=f"test-{view.id}",
        status=MessageStatus.DELIVERED,
        created_at=at[5],
    )
    session.add(message)
    session.flush()
    session.add(
        MessageEvent(message_id=message.id, status="delivered", source="twilio", created_at=at[5])
    )
    clock.advance(at[7] - clock.utcnow())
    reassign_loan(
        session, actor=actor(manager), loan_number=number, agent_id=manager.id, today=today
    )
    page = loan_history(session, actor=actor(manager), loan_number=number, limit=50)
    kinds = [i.kind for i in page.items]
    assert kinds == [
        "reassigned",
        "inbound_sms",
        "sms",
        "contact",
        "promise",
        "payment",
        "edited",
        "created",
    ]
    summaries = {i.kind: i for i in page.items}
    assert summaries["payment"].summary == "Payment ₹1,500.00 (upi)"
    assert summaries["payment"].staff_name == agent_a.name
    assert "12 MG Road" in summaries["edited"].summary
    assert summaries["inbound_sms"].summary.endswith("will pay friday")
    assert summaries["reassigned"].staff_name == manager.name
    assert summaries["sms"].summary == "SMS reminder delivered"
    assert summaries["sms"].staff_name is None
    assert summaries["promise"].summary.startswith("Promise of ₹500.00 by ")
    assert summaries["contact"].summary == "Call: no answer"
    assert page.next_cursor is None
    assert [i.at for i in page.items] == sorted((i.at for i in page.items), reverse=True)

    walked, cursor = [], None
    while True:
        small = loan_history(
            session, actor=actor(manager), loan_number=number, limit=3, before=cursor
        )
        walked += small.items
        if small.next_cursor is None:
            break
        cursor = small.next_cursor
    assert walked == page.items


def test_history_same_instant_pages_do_not_overlap(session, agent_a, today):
    loan = make_loan(session, agent=agent_a, loan_number="T-HIST-2")
    same = datetime(2030, 5, 5, 10, 0, tzinfo=UTC)
    session.add_all(
        [
            Payment(
                loan_id=loan.id, amount=Decimal(10 + i), method=PaymentMethod.CASH, paid_at=same
            )
            for i in range(4)
        ]
        + [
            Contact(
                loan_id=loan.id,
                channel=ContactChannel.VISIT,
                outcome=ContactOutcome.PAID,
                created_at=same,
            )
            for _ in range(3)
        ]
    )
    session.flush()
    walked, cursor = [], None
    while True:
        page = loan_history(
            session, actor=actor(agent_a), loan_number="T-HIST-2", limit=2, before=cursor
        )
        walked += page.items
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert len(walked) == 7
    assert [i.kind for i in walked] == ["payment"] * 4 + ["contact"] * 3


def test_history_of_another_agents_loan_is_not_found(session, agent_a, agent_b):
    make_loan(session, agent=agent_a, loan_number="T-HIST-3")
    with pytest.raises(NotFound):
        loan_history(session, actor=actor(agent_b), loan_number="T-HIST-3")


def test_loan_with_history_is_the_card_and_a_page_of_its_history(session, agent, agent_b):
    loan = make_loan(session, agent=agent)
    today = clock.utcnow().date()
    kw = {"today": today, "agency": Agency(), "limit": 5}
    by_id = loan_with_history(session, actor=actor(agent), loan_id=loan.id, **kw)
    by_number = loan_with_history(session, actor=actor(agent), loan_number=loan.loan_number, **kw)
    assert by_id == by_number and by_id.loan.loan_number == loan.loan_number
    assert by_id.history == loan_history(
        session, actor=actor(agent), loan_number=loan.loan_number, limit=5, agency=Agency()
    )
    for who in ({"loan_id": loan.id}, {"loan_number": loan.loan_number}):
        with pytest.raises(NotFound):
            loan_with_history(session, actor=actor(agent_b), **who, **kw)
