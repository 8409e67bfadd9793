"""One conversation at a time: a new form's entry point ends the one left open."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot import texts
from db.models import Role
from tests.bot_harness import BotHarness
from tests.bot_helpers import agent_card, is_card, new_loan, paid_total, tap

pytestmark = pytest.mark.e2e


async def test_pressing_pay_during_new_loan_sends_the_amount_to_the_payment(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, loan, card = await agent_card(h)
        await h.say(agent, "/new")  # the add-loan form now waits for a phone number
        await tap(h, agent, card, "Pay", contains="How much was paid")
        summary = await h.say(agent, "1500", contains="Please check the payment")
        assert "Balance after: ₹8,500.00" in summary["text"]
        await tap(h, agent, summary, "Confirm", contains="recorded")
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


async def test_an_edited_command_is_not_run_again(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        loan = new_loan(h, agent)
        sent = h.send(agent, f"/pay {loan.number} 1500")
        summary = await h.wait(agent, contains="Please check the payment")
        await tap(h, agent, summary, "Confirm", contains="recorded")
        await h.wait(agent, predicate=is_card)
        # Editing the command (here to another amount) neither pays again nor opens a form.
        h.edit(agent, sent["message_id"], f"/pay {loan.number} 2500")
        assert (await h.wait(agent))["text"] == texts.EDIT_NOT_RERUN
        await h.silence(agent)
        assert paid_total(h, loan) == Decimal("1500.00")


async def test_an_edited_answer_inside_a_form_is_not_taken(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, _loan, card = await agent_card(h)
        await tap(h, agent, card, "Pay", contains="How much was paid")
        sent = h.send(agent, "150,50")
        await h.wait(agent, contains="not clear as an amount")
        h.edit(agent, sent["message_id"], "1500")
        assert (await h.wait(agent))["text"] == texts.EDIT_NOT_RERUN
        summary = await h.say(agent, "1500", contains="Please check the payment")
        assert "₹1,500.00" in summary["text"]


async def test_edits_count_for_the_rate_limit(settings, committed):
    async with BotHarness(settings, committed, bot_commands_per_minute=3) as h:
        user = h.person("Quick")
        sent = h.send(user, "/help")
        assert "To get in" in (await h.wait(user))["text"]
        for text in ("/help ", "/help  "):
            h.edit(user, sent["message_id"], text)
            assert (await h.wait(user))["text"] == texts.EDIT_NOT_RERUN
        h.edit(user, sent["message_id"], "/help")
        assert (await h.wait(user))["text"] == texts.SLOW_DOWN
        h.send(user, "/help")
        await h.silence(user)
