"""One conversation at a time: a new form's entry point ends the one left open."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot import texts
from db.models import Role
from tests.bot_harness import BotHarness
from tests.test_bot_payment import button, is_card, new_loan, open_card, paid_total

pytestmark = pytest.mark.e2e


async def test_pressing_pay_during_new_loan_sends_the_amount_to_the_payment(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        loan = new_loan(h, agent)
        card = await open_card(h, agent, loan)
        await h.say(agent, "/new")  # the add-loan form now waits for a phone number
        await h.press(agent, card, button(card, "Pay"))
        await h.wait(agent, contains="How much was paid")
        summary = await h.say(agent, "1500", contains="Please check the payment")
        assert "Balance after: ₹8,500.00" in summary["text"]
        await h.press(agent, summary, button(summary, "Confirm"))
        await h.wait(agent, contains="recorded")
        await h.wait(agent, predicate=is_card)
        assert paid_total(h, loan) == Decimal("1500.00")
        # The abandoned /new does not come back: plain text now gets the generic hint.
        hint = await h.say(agent, "9876543210")
        assert hint["text"] == texts.UNKNOWN_TEXT


async def test_new_command_ends_an_open_payment(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        loan = new_loan(h, agent)
        await h.say(agent, f"/pay {loan.number}", contains="How much was paid")
        ask = await h.say(agent, "/new")
        assert "phone" in ask["text"].lower()
        await h.say(agent, "98765 43210")
        assert paid_total(h, loan) == Decimal("0")
