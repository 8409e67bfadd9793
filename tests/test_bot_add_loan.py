"""End-to-end over HTTP: /new, step by step, with every refusal re-prompting and saving nothing."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot import texts
from db import clock
from db.models import Borrower, InterestMethod, Loan, LoanEvent, LoanEventKind, Role
from db.services.loans import add as loan_service
from tests.bot_harness import BotHarness
from tests.bot_helpers import actor_of, loan_number

pytestmark = pytest.mark.e2e


def _phone() -> str:
    """A valid Indian mobile number, random so parallel runs on one database never clash."""
    return f"98{random.randrange(10**8):08d}"


def _loans_of(h: BotHarness, staff_id: int) -> list[Loan]:
    return h.db(lambda s: list(s.scalars(select(Loan).where(Loan.agent_id == staff_id))))


def _loan(h: BotHarness, number: str) -> Loan:
    return h.db(lambda s: s.scalars(select(Loan).where(Loan.loan_number == number)).one())


async def _tap(h: BotHarness, who, message: dict, label: str) -> dict:
    button = next(b for b in message["buttons"] if b["text"] == label)
    return await h.press(who, message, button["callback_data"])


async def _to_amount(h: BotHarness, who, phone: str, name: str = "Ravi Kumar") -> dict:
    """/new up to the amount question, with a new borrower."""
    assert (await h.say(who, "/new"))["text"] == texts.NEW_ASK_PHONE
    assert (await h.say(who, phone))["text"] == texts.NEW_ASK_NAME
    assert (await h.say(who, name))["text"] == texts.NEW_ASK_ADDRESS
    asked = await h.say(who, "12 MG Road, Pune")
    assert asked["text"] == texts.NEW_ASK_AMOUNT
    return asked


async def _single_to_summary(
    h: BotHarness, who, amount: str = "25000", number: str | None = None
) -> dict:
    """From the amount question to the summary: one due date in 10 days, no interest."""
    plans = await h.say(who, amount)
    await _tap(h, who, plans, "Single due date")
    await h.wait(who, contains="When is it due")
    interest = await h.say(who, "+10")
    await _tap(h, who, interest, "None")
    await h.wait(who, contains="loan number")
    return await h.say(who, number or "auto", contains="Please check")


async def test_single_due_date_happy_path(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        phone, number = _phone(), loan_number()
        await _to_amount(h, agent, phone)
        summary = await _single_to_summary(h, agent, "25,000.50", number)
        assert "Ravi Kumar" in summary["text"] and number in summary["text"]
        assert "₹25,000.50" in summary["text"]
        await _tap(h, agent, summary, "✅ Confirm")
        card = await h.wait(agent, contains="added")
        assert f"Loan {number} added" in card["text"] and "Outstanding: ₹25,000.50" in card["text"]
        assert "💰 Pay" in [b["text"] for b in card["buttons"]]

        loan = _loan(h, number)
        today = clock.today(h.settings.tz)
        assert loan.agent_id == agent.staff_id and loan.installments_count == 1
        assert loan.principal == Decimal("25000.50")
        assert loan.first_due_date == today + timedelta(days=10)
        assert loan.borrower.phone == "+91" + phone and loan.borrower.address == "12 MG Road, Pune"
        events = h.db(
            lambda s: s.scalars(select(LoanEvent.kind).where(LoanEvent.loan_id == loan.id)).all()
        )
        assert events == [LoanEventKind.CREATED]
        assert (await h.say(agent, "more text"))["text"] == texts.UNKNOWN_TEXT  # it has ended


async def test_installments_with_reducing_interest(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        await _to_amount(h, agent, _phone())
        plans = await h.say(agent, "30000")
        await _tap(h, agent, plans, "Installments")
        await h.wait(agent, contains="How many installments")
        often = await h.say(agent, "6")
        await _tap(h, agent, often, "Weekly")
        await h.wait(agent, contains="first installment")
        interest = await h.say(agent, "tomorrow")
        await _tap(h, agent, interest, "Reducing")
        await h.wait(agent, contains="yearly interest rate")
        numbers = await h.say(agent, "24%")
        await _tap(h, agent, numbers, "Generate")
        summary = await h.wait(agent, contains="Please check")
        assert "6 × weekly" in summary["text"] and "reducing interest 24% a year" in summary["text"]
        await _tap(h, agent, summary, "✅ Confirm")
        card = await h.wait(agent, contains="added")

        (loan,) = _loans_of(h, agent.staff_id)
        assert loan.loan_number in card["text"] and loan.loan_number.startswith("LN-")
        assert loan.installments_count == 6 and loan.interest_method is InterestMethod.REDUCING
        assert loan.interest_rate == Decimal("24") and loan.amount_payable > Decimal("30000")
        assert f"Total to repay: ₹{loan.amount_payable:,.2f}" in summary["text"]


BAD_AMOUNTS = {
    "-5": "more than zero",
    "0": "more than zero",
    "1e9": "not an amount",
    "12.345": "at most 2 decimal",
    "abc": "not an amount",
    "١٢٣": "not an amount",
    "100000001": "above the limit",
}


async def test_bad_answers_reprompt_and_change_nothing(settings, committed):
    async with BotHarness(settings, committed, bot_commands_per_minute=500) as h:
        agent = h.make_staff(Role.AGENT)
        await h.say(agent, "/new")
        for phone, why in (
            ("12345", "not a valid phone number in IN"),
            ("call me", "not a phone number"),
            ("+1 202 555 01", "not a valid"),
        ):
            again = await h.say(agent, phone)
            assert why in again["text"] and texts.NEW_ASK_PHONE in again["text"], phone
        await h.say(agent, _phone())
        for name, why in (("x" * 4096, "too long"), ("7", "at least two characters")):
            again = await h.say(agent, name)
            assert why in again["text"] and again["text"].endswith(texts.NEW_ASK_NAME)
        await h.say(agent, "Asha Zyxwv")
        await h.say(agent, "skip")
        for amount, why in BAD_AMOUNTS.items():
            again = await h.say(agent, amount)
            assert why in again["text"] and again["text"].endswith(texts.NEW_ASK_AMOUNT), amount
        plans = await h.say(agent, "500")
        assert (await h.say(agent, "installments"))["text"].startswith(texts.NEW_USE_BUTTONS)
        await _tap(h, agent, plans, "Installments")
        await h.wait(agent, contains="How many")
        for count, why in (
            ("1", "between 2 and 360"),
            ("361", "between 2 and 360"),
            ("two", "whole number"),
        ):
            assert why in (await h.say(agent, count))["text"], count
        often = await h.say(agent, "2")
        await _tap(h, agent, often, "Daily")
        await h.wait(agent, contains="first installment")
        for day, why in (
            ("01/01/2020", "has passed"),
            ("someday", "not a date"),
            ("01/01/2099", "too far"),
        ):
            assert why in (await h.say(agent, day))["text"], day
        interest = await h.say(agent, "today")
        await _tap(h, agent, interest, "Flat")
        await h.wait(agent, contains="yearly interest rate")
        for rate, why in (("101", "at most 100%"), ("lots", "in percent")):
            assert why in (await h.say(agent, rate))["text"], rate
        await h.say(agent, "10")
        assert "3 to 32 letters" in (await h.say(agent, "#1"))["text"]
        assert (await h.say(agent, "/cancel"))["text"] == texts.CANCELLED
        assert _loans_of(h, agent.staff_id) == []
        assert (
            h.db(
                lambda s: s.scalar(
                    select(func.count()).select_from(Borrower).where(Borrower.name == "Asha Zyxwv")
                )
            )
            == 0
        )


async def test_a_script_name_is_shown_escaped(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        name = "<script>alert(1)</script> & Co"
        await _to_amount(h, agent, _phone(), name=name)
        summary = await _single_to_summary(h, agent)
        assert name in summary["text"] and "&lt;script&gt;" in summary["source"]
        await _tap(h, agent, summary, "✅ Confirm")
        card = await h.wait(agent, contains="added")
        assert name in card["text"] and "<script>" not in card["source"]


async def test_an_existing_borrower_is_offered(settings, committed):
    # The agent's own borrower is offered; another agent's is not (tests/test_borrower_scope.py).
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        phone = _phone()
        first = h.db(
            loan_service.add_loan,
            actor=actor_of(agent),
            phone=phone,
            name="Meena Rao",
            address="Hill Road",
            principal=Decimal(900),
            first_due=clock.today(h.settings.tz),
            today=clock.today(h.settings.tz),
        )
        await h.say(agent, "/new")
        offer = await h.say(agent, "0" + phone)
        assert "Meena Rao" in offer["text"] and "Hill Road" in offer["text"]
        assert "1 loan(s)" in offer["text"]
        await _tap(h, agent, offer, "✅ Use this borrower")
        assert (await h.wait(agent, contains="How much"))["text"] == texts.NEW_ASK_AMOUNT
        summary = await _single_to_summary(h, agent, "1200")
        assert "Meena Rao" + texts.NEW_EXISTING_MARK in summary["text"]
        await _tap(h, agent, summary, "✅ Confirm")
        await h.wait(agent, contains="added")
        loans = _loans_of(h, agent.staff_id)
        assert len(loans) == 2 and {ln.borrower_id for ln in loans} == {first.borrower_id}

        await h.say(agent, "/new")
        offer = await h.say(agent, phone)
        await _tap(h, agent, offer, "Cancel")
        assert (await h.wait(agent, contains="Cancelled"))["text"] == texts.CANCELLED
        assert len(_loans_of(h, agent.staff_id)) == 2


async def test_confirm_pressed_twice_adds_one_loan(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        await _to_amount(h, agent, _phone())
        summary = await _single_to_summary(h, agent)
        confirm = next(b["callback_data"] for b in summary["buttons"] if "Confirm" in b["text"])
        # Both taps land before the bot has answered either (a double tap on a slow network).
        first = h.sandbox.press(agent.user_id, summary["message_id"], confirm)
        second = h.sandbox.press(agent.user_id, summary["message_id"], confirm)
        answers = await asyncio.gather(
            h.sandbox.wait_answer_async(first), h.sandbox.wait_answer_async(second)
        )
        await h.wait(agent, contains="added")
        assert answers[1]["text"] == texts.OLD_BUTTON
        assert len(_loans_of(h, agent.staff_id)) == 1
        later = await h.press(agent, summary, confirm, force=True)
        assert later["text"] == texts.OLD_BUTTON
        assert len(_loans_of(h, agent.staff_id)) == 1


async def test_a_button_of_an_earlier_form_changes_nothing(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        await _to_amount(h, agent, _phone())
        old_plans = await h.say(agent, "700")
        await _to_amount(h, agent, _phone(), name="Second Form")
        plans = await h.say(agent, "800")
        single = next(b["callback_data"] for b in old_plans["buttons"] if "Single" in b["text"])
        assert (await h.press(agent, old_plans, single))["text"] == texts.OLD_BUTTON
        await h.silence(agent, 0.3)
        await _tap(h, agent, plans, "Installments")
        assert (await h.wait(agent, contains="How many"))["text"] == texts.NEW_ASK_COUNT


async def test_cancel_midway_saves_nothing(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        await _to_amount(h, agent, _phone())
        await h.say(agent, "5000")
        assert (await h.say(agent, "/cancel"))["text"] == texts.CANCELLED
        assert (await h.say(agent, "5000"))["text"] == texts.UNKNOWN_TEXT
        assert _loans_of(h, agent.staff_id) == []


async def test_a_restart_in_the_middle_resumes_the_form(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        number = loan_number()
        await _to_amount(h, agent, _phone(), name="Kiran Das")
        plans = await h.say(agent, "4200")
        await h.restart()
        await _tap(h, agent, plans, "Installments")  # a button sent before the restart
        assert (await h.wait(agent, contains="How many"))["text"] == texts.NEW_ASK_COUNT
        await h.restart()
        often = await h.say(agent, "2")
        await _tap(h, agent, often, "Monthly")
        await h.wait(agent, contains="first installment")
        interest = await h.say(agent, "+5")
        await _tap(h, agent, interest, "None")
        await h.wait(agent, contains="loan number")
        summary = await h.say(agent, number)
        assert "Kiran Das" in summary["text"] and "₹4,200.00" in summary["text"]
        await _tap(h, agent, summary, "✅ Confirm")
        await h.wait(agent, contains="added")
        loan = _loan(h, number)
        assert loan.agent_id == agent.staff_id and loan.installments_count == 2


async def test_a_taken_number_asks_for_another(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        taken = loan_number()
        today = clock.today(h.settings.tz)
        h.db(
            loan_service.add_loan,
            actor=actor_of(agent),
            phone=_phone(),
            name="First One",
            address=None,
            principal=Decimal(100),
            first_due=today,
            today=today,
            loan_number=taken,
        )
        await _to_amount(h, agent, _phone())
        summary = await _single_to_summary(h, agent, number=taken)
        await _tap(h, agent, summary, "✅ Confirm")
        again = await h.wait(agent, contains="already in use")
        assert again["text"].endswith(texts.NEW_ASK_NUMBER)
        fresh = loan_number()
        summary = await h.say(agent, fresh, contains="Please check")
        await _tap(h, agent, summary, "✅ Confirm")
        await h.wait(agent, contains="added")
        assert len(_loans_of(h, agent.staff_id)) == 2 and _loan(h, fresh).principal == 25000


@pytest.mark.parametrize("role", [Role.MANAGER, Role.ADMIN])
async def test_managers_and_admins_are_asked_nothing_more(settings, committed, role):
    async with BotHarness(settings, committed) as h:
        boss = h.make_staff(role)
        number = loan_number()
        await _to_amount(h, boss, _phone())
        summary = await _single_to_summary(h, boss, number=number)
        await _tap(h, boss, summary, "✅ Confirm")
        card = await h.wait(boss, contains="added")
        expected = boss.staff_id if role is Role.MANAGER else None
        assert _loan(h, number).agent_id == expected
        labels = [b["text"] for b in card["buttons"]]
        assert "👤 Reassign" in labels and ("🗄 Archive" in labels) == (role is Role.ADMIN)
