"""End-to-end over HTTP: the steps every loan action shares (bot/conversations/loan_action.py).

Usage texts, Cancel, text typed where a button is wanted, an answer asked again, a loan in
the wrong state, a step superseded by another form: each action says the same as before.
"""

from __future__ import annotations

import pytest

from bot import texts
from db.models import Contact, Loan, LoanState, Payment, Role
from db.services.loans import add as loan_service
from tests.bot_harness import BotHarness
from tests.bot_helpers import actor_of, agent_card, button, count, new_loan, open_card, tap

pytestmark = pytest.mark.e2e


async def test_a_command_without_its_loan_number_says_its_usage(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, admin = h.make_staff(Role.AGENT), h.make_staff(Role.ADMIN)
        for command, usage in (
            ("/pay", texts.PAY_USAGE),
            ("/promise", texts.PROMISE_USAGE),
            ("/promise L-1 100 tomorrow extra", texts.PROMISE_USAGE),
            ("/contact", texts.CONTACT_USAGE),
            ("/contact L-1 more", texts.CONTACT_USAGE),
            ("/edit", texts.EDIT_USAGE),
            ("/close", texts.CLOSE_USAGE),
        ):
            assert (await h.say(agent, command))["text"] == usage, command
        assert (await h.say(admin, "/archive"))["text"] == texts.ARCHIVE_USAGE
        assert (await h.say(admin, "/restore"))["text"] == texts.RESTORE_USAGE


async def test_cancel_and_typed_text_at_a_confirmation_change_nothing(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, manager = h.make_staff(Role.AGENT), h.make_staff(Role.MANAGER)
        loan = new_loan(h, agent)
        card = await open_card(h, manager, loan)
        await tap(h, manager, card, "Write off", contains="Send the reason")
        summary = await h.say(manager, "Borrower moved away", contains="Write off loan")
        assert (await h.say(manager, "yes please"))["text"] == texts.USE_BUTTONS
        gone = await tap(h, manager, summary, "Cancel", contains="Cancelled")
        assert gone["text"] == texts.CANCELLED and gone["buttons"] == []
        await h.silence(manager, 0.3)
        assert h.db(lambda s: s.get(Loan, loan.id).state) == LoanState.ACTIVE

        summary = await h.say(manager, f"/pay {loan.number} 100", contains="Please check")
        await tap(h, manager, summary, "Cancel", contains="Cancelled")
        assert count(h, Payment, Payment.loan_id == loan.id) == 0


async def test_archive_and_restore_refuse_a_loan_in_the_wrong_state(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, admin = h.make_staff(Role.AGENT), h.make_staff(Role.ADMIN)
        loan = new_loan(h, agent)
        refused = await h.say(admin, f"/restore {loan.number}")
        assert refused["text"] == f"Loan {loan.number} is not archived."
        await h.say(admin, f"/archive {loan.number}", contains="Send the reason")
        again = await h.say(admin, "x")
        assert again["text"].endswith(texts.ARCHIVE_ASK_AGAIN)
        h.db(
            loan_service.archive_loan,
            actor=actor_of(admin),
            loan_number=loan.number,
            reason="archived meanwhile",
        )
        refused = await h.say(admin, f"/delete {loan.number}")
        assert refused["text"] == f"Loan {loan.number} is archived already."


async def test_a_contact_note_too_long_is_asked_again(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, loan, card = await agent_card(h)
        ask = await tap(h, agent, card, "Contact", contains="How did you reach them")
        assert (await h.say(agent, "a call"))["text"] == texts.USE_BUTTONS
        ask = await tap(h, agent, ask, "Call", contains="What came of it")
        await tap(h, agent, ask, "No answer", contains="Add a short note")
        again = await h.say(agent, "n" * 1001)
        assert again["text"].endswith(texts.CONTACT_ASK_NOTE_AGAIN)
        assert count(h, Contact, Contact.loan_id == loan.id) == 0
        done = await h.say(agent, "short", contains="Contact recorded")
        assert done["text"] == "📞 Contact recorded: Call, No answer."


async def test_a_step_of_a_superseded_form_writes_nothing(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, loan, card = await agent_card(h)
        summary = await h.say(agent, f"/pay {loan.number} 100", contains="Please check")
        await tap(h, agent, card, "Promise", contains="How much did the borrower promise")
        old = await h.press(agent, summary, button(summary, "Confirm"))
        assert old["text"] == texts.OLD_BUTTON
        await h.silence(agent, 0.3)
        assert count(h, Payment, Payment.loan_id == loan.id) == 0
