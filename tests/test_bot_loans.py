"""Looking loans up: the card, /find, /list, /today, /history (end-to-end) and their formatting."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot import keyboards, texts, views
from bot.keyboards import CB, data
from db import clock
from db.agency import Agency
from db.models import (
    ContactChannel,
    ContactOutcome,
    Frequency,
    InterestMethod,
    LoanState,
    PromiseState,
    Role,
    Staff,
)
from db.money import build_schedule, format_money
from db.services.collection import payments, promises
from db.services.loans import add as loan_service
from db.services.loans.add import EditableField, HistoryItem
from db.services.loans.snapshots import ContactView, LoanSummary, LoanView, PromiseView
from tests.bot_harness import BotHarness, Person
from tests.bot_helpers import actor_of, loan_number
from tests.factories import make_borrower, make_loan

e2e = pytest.mark.e2e
BUSY = {"bot_commands_per_minute": 500}  # these tests press many buttons in a minute


def _phone() -> str:
    return f"+9198{random.randrange(10**8):08d}"


def _today(h: BotHarness) -> date:
    return clock.today(h.settings.tz)


def _loan(
    h: BotHarness,
    owner: Person,
    name: str,
    *,
    due_in: int = 10,
    phone: str | None = None,
    principal: Decimal = Decimal("10000.00"),
) -> tuple[int, str]:
    """(id, number) of a loan inserted directly: due dates in the past are allowed here."""

    def make(session):
        borrower = make_borrower(session, name=name, phone=phone or _phone(), address="1 Main St")
        loan = make_loan(
            session,
            agent=session.get(Staff, owner.staff_id),
            borrower=borrower,
            principal=principal,
            first_due=_today(h) + timedelta(days=due_in),
            loan_number=loan_number(),
        )
        return loan.id, loan.loan_number

    return h.db(make)


def _labels(message: dict) -> list[str]:
    return [b["text"] for b in message["buttons"]]


def _loan_buttons(message: dict) -> list[dict]:
    return [b for b in message["buttons"] if b["callback_data"].startswith(CB.LOAN_CARD)]


async def _tap(h: BotHarness, who, message: dict, label: str) -> dict:
    button = next(b for b in message["buttons"] if b["text"] == label)
    await h.press(who, message, button["callback_data"])
    return await h.wait(who, predicate=lambda m: m["message_id"] == message["message_id"])


# --- the card ----------------------------------------------------------------------------------


@e2e
async def test_the_card_shows_the_loan_escaped(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        loan_id, number = _loan(h, agent, "<b>Bold</b> & Sons", due_in=-5)
        today, who = _today(h), actor_of(agent)
        h.db(
            payments.record_payment,
            actor=who,
            loan_number=number,
            amount=Decimal(1000),
            today=today,
        )
        h.db(
            promises.record_promise,
            actor=who,
            loan_number=number,
            amount=Decimal(500),
            promised_date=today + timedelta(days=2),
            today=today,
        )
        h.db(
            promises.record_contact,
            actor=who,
            loan_number=number,
            channel=ContactChannel.CALL,
            outcome=ContactOutcome.PROMISED,
            note="pays <friday>",
        )
        card = await h.say(agent, f"/loan {number.lower()}")
        text = card["text"]
        assert f"Loan {number} · active" in text and "👤 <b>Bold</b> & Sons" in text
        assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Sons" in card["source"]
        for part in (
            "🏠 1 Main St",
            "Amount: ₹10,000.00 · one payment",
            "Paid: ₹1,000.00",
            "Outstanding: ₹9,000.00",
            "5 days past due · ₹9,000.00 overdue",
            "Promise: ₹500.00 by",
            "call: promised (pays <friday>)",
            f"Agent: {agent.name}",
        ):
            assert part in text, part
        assert _labels(card) == [
            "💰 Pay",
            "🤝 Promise",
            "📞 Contact",
            "✏️ Edit",
            "📜 History",
            "🔔 Remind now",
            "✅ Close",
            "⚖️ Dispute",
            "⏸ Hardship",
        ]
        version = h.db(loan_service.get_loan_by_id, actor=who, loan_id=loan_id, today=today).version
        assert card["buttons"][0]["callback_data"] == data(CB.LOAN_PAY, loan_id, version)


@e2e
async def test_card_buttons_follow_role_and_state(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, manager, admin = (h.make_staff(r) for r in (Role.AGENT, Role.MANAGER, Role.ADMIN))
        _, number = _loan(h, agent, "Role Check")
        manager_card = await h.say(manager, f"/loan {number}")
        assert _labels(manager_card)[-2:] == ["✖️ Write off", "👤 Reassign"]
        assert _labels(await h.say(admin, f"/loan {number}"))[-1] == "🗄 Archive"
        h.db(
            loan_service.write_off_loan,
            actor=actor_of(manager),
            loan_number=number,
            reason="Moved away",
            expected_version=None,
            today=_today(h),
        )
        card = await h.say(agent, f"/loan {number}")
        assert "written off" in card["text"] and "Reason: Moved away" in card["text"]
        assert _labels(card) == ["📜 History"]
        assert _labels(await h.say(admin, f"/loan {number}")) == ["📜 History", "🗄 Archive"]


@e2e
async def test_another_agents_loan_is_not_found_like_a_missing_one(settings, committed):
    async with BotHarness(settings, committed, **BUSY) as h:
        owner, other = h.make_staff(Role.AGENT), h.make_staff(Role.AGENT)
        loan_id, number = _loan(h, owner, "Not Yours")
        assert (await h.say(other, f"/loan {number}"))["text"] == f"No loan {number} found."
        assert (await h.say(other, "/loan NO-SUCH-1"))["text"] == "No loan NO-SUCH-1 found."
        assert "3 to 32 letters" in (await h.say(other, "/loan ?"))["text"]
        assert (await h.say(other, "/loan"))["text"] == texts.LOAN_USAGE
        answers = []
        for forged in (
            data(CB.LOAN_CARD, loan_id),
            data(CB.LOAN_CARD, 987654321),
            data(CB.LOAN_HISTORY, loan_id, 1),
            data(CB.LOAN_HISTORY_PAGE, loan_id, 2),
        ):
            await h.press(other, 1, forged, force=True)
            answers.append((await h.wait(other))["text"])
        assert answers == ["No loan found."] * 4
        assert (await h.say(other, f"/history {number}"))["text"] == f"No loan {number} found."
        assert number in (await h.say(owner, f"/loan {number}"))["text"]


@e2e
async def test_forged_lookup_buttons_change_nothing(settings, committed):
    async with BotHarness(settings, committed, **BUSY) as h:
        agent = h.make_staff(Role.AGENT)
        for forged in (
            "ln:card:abc",
            "ln:card:0",
            "ln:his:1",
            "lnh:abc:1",
            "lnl:bogus:1",
            "lnl:all:0",
            "lnl:all:x",
            "lnf:x",
            "lnf:1:2",
        ):
            answer = await h.press(agent, 1, forged, force=True)
            assert answer["text"] == texts.BAD_BUTTON, forged
        assert (await h.press(agent, 1, "lnf:2", force=True))["text"] == texts.FIND_OVER
        await h.silence(agent, 0.3)


@e2e
async def test_a_card_button_shows_fresh_data(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        _, number = _loan(h, agent, "Old Name")
        listed = await h.say(agent, "/list")
        card = await h.say(agent, f"/loan {number}")
        h.db(
            loan_service.edit_loan,
            actor=actor_of(agent),
            loan_number=number,
            field=EditableField.BORROWER_NAME,
            value="New Name",
            expected_version=None,
            today=_today(h),
        )
        (button,) = _loan_buttons(listed)
        await h.press(agent, listed, button["callback_data"])
        fresh = await h.wait(agent, contains="New Name")
        assert fresh["message_id"] != card["message_id"] and "Old Name" not in fresh["text"]
        history = next(b for b in card["buttons"] if b["text"] == "📜 History")
        await h.press(agent, card, history["callback_data"])  # an old version: read-only, fine
        page = await h.wait(agent, contains="History of")
        assert "borrower name Old Name → New Name" in page["text"]


# --- /find -------------------------------------------------------------------------------------


@e2e
async def test_find_by_number_name_prefix_and_phone(settings, committed):
    async with BotHarness(settings, committed, **BUSY) as h:
        agent, other = h.make_staff(Role.AGENT), h.make_staff(Role.AGENT)
        phone = _phone()
        _, quill = _loan(h, agent, "Zara Quill", phone=phone)
        _loan(h, agent, "Zara Quinn")
        omar_id, omar = _loan(h, agent, "Omar Zed")
        _loan(h, other, "Zara Quaid")
        found = await h.say(agent, f"/find {omar}")
        assert [b["callback_data"] for b in found["buttons"]] == [data(CB.LOAN_CARD, omar_id)]
        names = await h.say(agent, "/find zara qu")
        assert "Loans matching “zara qu” · 1–2" in names["text"]
        assert [b["text"].split(" · ")[-1] for b in names["buttons"]] == [
            "Zara Quill",
            "Zara Quinn",
        ]
        by_phone = await h.say(agent, f"/find 0{phone[3:]}")
        assert [b["text"].split(" · ")[0] for b in by_phone["buttons"]] == [quill]
        assert (await h.say(agent, "/find"))["text"] == texts.FIND_ASK
        asked = await h.say(agent, "omar")
        assert _labels(asked)[0].startswith(omar)
        none = await h.say(agent, "/find Nobody <Here>")
        assert (
            none["text"] == "No loans match “Nobody <Here>”. Try a loan number, a phone "
            "number or a name."
        )
        await h.press(agent, found, found["buttons"][0]["callback_data"])
        assert "Omar Zed" in (await h.wait(agent, contains="Loan "))["text"]


@e2e
async def test_find_pages_are_edited_in_place(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        for i in range(10):
            _loan(h, agent, f"Pager Person {i:02d}")
        first = await h.say(agent, "/find pager")
        assert "1–8" in first["text"] and len(_loan_buttons(first)) == 8
        assert _labels(first)[-1] == "More »"
        second = await _tap(h, agent, first, "More »")
        assert "9–10" in second["text"] and len(_loan_buttons(second)) == 2
        assert _labels(second)[-1] == "« Back" and second["edits"] == 1
        assert "Pager Person 09" in _labels(second)[1]
        again = await _tap(h, agent, second, "« Back")
        assert "1–8" in again["text"] and again["message_id"] == first["message_id"]


# --- /list and /today ------------------------------------------------------------------------


@e2e
async def test_list_filters_and_pages_edit_in_place(settings, committed):
    async with BotHarness(settings, committed, **BUSY) as h:
        agent = h.make_staff(Role.AGENT)
        for due_in in (-100, -45, -5, -5, -5, 0, 3, 20, 40, 60):
            _loan(h, agent, f"Lister {due_in}", due_in=due_in)
        page1 = await h.say(agent, "/list")
        assert page1["text"] == "Your loans · All · page 1"
        assert len(_loan_buttons(page1)) == 8 and "100d late" in _labels(page1)[0]
        assert "Next »" in _labels(page1) and "« Prev" not in _labels(page1)
        page2 = await _tap(h, agent, page1, "Next »")
        assert page2["text"] == "Your loans · All · page 2" and len(_loan_buttons(page2)) == 2
        assert "« Prev" in _labels(page2) and "Next »" not in _labels(page2)
        back = await _tap(h, agent, page2, "« Prev")
        assert back["text"].endswith("page 1") and _labels(back) == _labels(page1)
        expected = {"Overdue": 5, "1-30": 3, "31-60": 1, "90+": 1, "Due today": 1, "61-90": 0}
        shown = back
        for label, count in expected.items():
            current = next(b for b in _labels(shown) if b.endswith(label))
            shown = await _tap(h, agent, shown, current)
            assert f"· {label} ·" in shown["text"] and len(_loan_buttons(shown)) == count, label
            assert f"• {label}" in _labels(shown)
        assert shown["text"].endswith(texts.LIST_EMPTY)
        assert shown["message_id"] == page1["message_id"]


@e2e
async def test_managers_list_all_loans(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, manager = h.make_staff(Role.AGENT), h.make_staff(Role.MANAGER)
        _, number = _loan(h, agent, "Seen By Manager", due_in=-400)
        listed = await h.say(manager, "/list")
        assert listed["text"].startswith("All loans")
        overdue = await _tap(h, manager, listed, "90+")
        assert any(label.startswith(number) for label in _labels(overdue))


@e2e
async def test_today_lists_what_to_work_on(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        due_id, due = _loan(h, agent, "Due Today")
        h.db(
            loan_service.edit_loan,
            actor=actor_of(agent),
            loan_number=due,
            field=EditableField.NEXT_DUE_DATE,
            value="today",
            expected_version=None,
            today=_today(h),
        )
        _, late = _loan(h, agent, "Twelve Late", due_in=-12)
        _loan(h, agent, "Not Yet", due_in=30)
        today = await h.say(agent, "/today")
        assert today["text"].startswith("Today · 2 loans")
        assert f"1. {due} Due Today · due today" in today["text"]
        assert f"2. {late} Twelve Late · overdue 12 days" in today["text"]
        assert today["buttons"][0]["callback_data"] == data(CB.LOAN_CARD, due_id)
        await h.press(agent, today, today["buttons"][0]["callback_data"])
        assert "Due Today" in (await h.wait(agent, contains="Loan "))["text"]
        assert (await h.say(h.make_staff(Role.AGENT), "/today"))["text"] == texts.TODAY_EMPTY


# --- /history --------------------------------------------------------------------------------


@e2e
async def test_history_pages_newest_first(settings, committed):
    async with BotHarness(settings, committed, **BUSY) as h:
        agent = h.make_staff(Role.AGENT)
        today = _today(h)
        view = h.db(
            loan_service.add_loan,
            actor=actor_of(agent),
            phone=_phone(),
            name="Hist Ory",
            address="Street 0",
            principal=Decimal(500),
            first_due=today,
            today=today,
        )
        for i in range(1, 22):
            h.db(
                loan_service.edit_loan,
                actor=actor_of(agent),
                loan_number=view.loan_number,
                field=EditableField.BORROWER_ADDRESS,
                value=f"Street {i}",
                expected_version=None,
                today=today,
            )
        page1 = await h.say(agent, f"/history {view.loan_number}")
        lines = page1["text"].splitlines()
        assert lines[0] == f"History of {view.loan_number} · page 1, newest first"
        assert len(lines) == 11 and "Street 20 → Street 21" in lines[1]
        assert _labels(page1) == ["Older »", "📄 Card"]
        page2 = await _tap(h, agent, page1, "Older »")
        assert "page 2" in page2["text"] and "Street 10 → Street 11" in page2["text"]
        assert _labels(page2) == ["« Newer", "Older »", "📄 Card"]
        page3 = await _tap(h, agent, page2, "Older »")
        assert len(page3["text"].splitlines()) == 3 and "Created" in page3["text"]
        assert _labels(page3) == ["« Newer", "📄 Card"]
        newer = await _tap(h, agent, page3, "« Newer")
        assert newer["text"] == page2["text"] and newer["message_id"] == page1["message_id"]
        assert (await h.say(agent, "/history"))["text"] == texts.HISTORY_USAGE


@e2e
async def test_help_lists_the_lookup_commands(settings, committed):
    async with BotHarness(settings, committed) as h:
        text = (await h.say(h.make_staff(Role.AGENT), "/help"))["text"]
        for command in ("/new", "/find", "/loan", "/history", "/list", "/today"):
            assert command in text


# --- formatting (no bot) ------------------------------------------------------------------------

FMT = Agency(currency="INR", zone=ZoneInfo("Asia/Kolkata"))
NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def _view(**changes) -> LoanView:
    values = dict(
        id=7,
        loan_number="LN-7",
        version=2,
        state=LoanState.ACTIVE,
        state_reason=None,
        borrower_id=3,
        borrower_name="Asha",
        borrower_phone="+919876543210",
        borrower_address=None,
        borrower_opted_out=False,
        agent_id=1,
        agent_name="Agent A",
        principal=Decimal("1000.00"),
        interest_method=InterestMethod.NONE,
        interest_rate=Decimal("0"),
        installments_count=1,
        frequency=Frequency.MONTHLY,
        first_due_date=date(2026, 3, 5),
        amount_payable=Decimal("1000.00"),
        fees_charged=Decimal("0"),
        amount_paid=Decimal("0"),
        outstanding=Decimal("1000.00"),
        next_due_date=date(2026, 3, 5),
        next_due_amount=Decimal("1000.00"),
        days_past_due=0,
        overdue_amount=Decimal("0"),
        installments_paid=0,
        open_promise=None,
        last_contact=None,
        created_at=NOW,
        updated_at=NOW,
    )
    return LoanView(**{**values, **changes})


def test_card_escapes_everything_and_stays_short():
    long = "<i>" + "x" * 2000
    view = _view(
        borrower_name="A&B <script>",
        borrower_address=long[:300],
        state_reason=long[:300],
        borrower_opted_out=True,
        agent_name=long[:120],
        open_promise=PromiseView(1, Decimal(5), date(2026, 3, 9), PromiseState.OPEN, "<x>", NOW),
        last_contact=ContactView(
            1, ContactChannel.VISIT, ContactOutcome.NO_ANSWER, long[:1000], "<y>", NOW
        ),
    )
    text = views.card(view, FMT, note="Paid <b>")
    assert "A&amp;B &lt;script&gt;" in text and "<script>" not in text and "<i>x" not in text
    assert text.startswith("<i>Paid &lt;b&gt;</i>") and texts.CARD_OPTED_OUT in text
    assert "…" in text and len(text) < 4096
    assert "09 Mar 2026 (by &lt;x&gt;)" in text and "2026-03-01 14:00" in text


def test_card_of_a_closed_loan_shows_no_due_date():
    text = views.card(_view(state=LoanState.CLOSED, next_due_date=None), FMT)
    assert "closed ✅" in text and "Next due" not in text


def test_card_keyboard_by_role():
    closed = _view(state=LoanState.WRITTEN_OFF)
    assert [
        b.text for row in keyboards.loan_card(closed, Role.AGENT).inline_keyboard for b in row
    ] == ["📜 History"]
    rows = keyboards.loan_card(_view(), Role.MANAGER).inline_keyboard
    assert [b.callback_data for b in rows[-1]] == ["ln:wof:7:2", "ln:asg:7:2"]


def test_labels_are_short_plain_text():
    loan = LoanSummary(
        1,
        "LN-ABCDEF",
        1,
        LoanState.ACTIVE,
        "N" * 120 + " <b>",
        "+91",
        Decimal("123456.78"),
        None,
        4,
        1,
    )
    label = views.loan_label(loan, FMT)
    assert len(label) <= views.LABEL_MAX and label.startswith("LN-ABCDEF · ₹1,23,456.78 · 4d late")


def test_history_lines_are_escaped_and_cut():
    items = [HistoryItem(NOW, "contact", "<b>" + "y" * 1000, "<agent>")] * 10
    text = views.history_text("LN-1", items, 2, FMT)
    assert "&lt;b&gt;" in text and "&lt;agent&gt;" in text and "page 2" in text
    assert len(text) < 4096
    assert views.history_text("LN-1", [], 1, FMT) == texts.HISTORY_EMPTY


@hsettings(max_examples=60, deadline=None)
@given(
    principal=st.decimals(min_value=Decimal("1.00"), max_value=Decimal("100000000"), places=2),
    count=st.integers(min_value=1, max_value=60),
    method=st.sampled_from(list(InterestMethod)),
    rate=st.decimals(min_value=Decimal("0"), max_value=Decimal("100"), places=2),
    frequency=st.sampled_from(list(Frequency)),
)
def test_the_summary_total_is_the_schedule_total(principal, count, method, rate, frequency):
    rate = Decimal(0) if method is InterestMethod.NONE else rate
    draft = views.Draft(
        "Ravi",
        False,
        "+919876543210",
        None,
        principal,
        count,
        frequency,
        date(2026, 1, 31),
        method,
        rate,
        None,
    )
    schedule = build_schedule(
        principal=principal,
        count=count,
        frequency=frequency,
        first_due=date(2026, 1, 31),
        method=method,
        annual_rate=rate,
    )
    text = views.new_summary(draft, FMT)
    total = sum((s.amount for s in schedule), Decimal(0))
    assert f"Total to repay: {format_money(total, FMT)}" in text
    assert f"Amount: {format_money(principal, FMT)}" in text
    if count > 1:
        assert f"{count} × {frequency.value}, {format_money(schedule[0].amount, FMT)} first" in text
