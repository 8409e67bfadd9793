"""End-to-end over HTTP: /edit, /close, write-off, reassign, /delete, and who may do them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from bot.keyboards import CB, data
from db.models import AuditEvent, Loan, LoanEvent, LoanEventKind, LoanState, Payment, Role
from db.services.audit.write import AuditAction
from tests.bot_harness import BotHarness
from tests.bot_helpers import (
    BORROWER,
    agent_card,
    count,
    is_card,
    new_loan,
    open_card,
    pay_directly,
    tap,
)

pytestmark = pytest.mark.e2e


async def test_edit_name_shows_before_after_and_writes_history(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, loan, card = await agent_card(h)
        fields = await tap(h, agent, card, "Edit", contains="What do you want to change")
        ask = await tap(h, agent, fields, "Borrower name", contains="Send the new value")
        assert f"Borrower name now: {BORROWER}" in ask["text"]
        assert (await h.say(agent, "x"))["text"].startswith("A name needs at least two")
        summary = await h.say(agent, "Asha Devi <A&S>", contains="Please check the change")
        assert f"Borrower name: {BORROWER} → Asha Devi <A&S>" in summary["text"]
        assert h.db(lambda s: s.get(Loan, loan.id).borrower.name) == BORROWER, "preview only"

        done = await tap(h, agent, summary, "Confirm", contains="Changed")
        assert done["text"] == f"✏️ Changed Borrower name: {BORROWER} → Asha Devi <A&S>"
        assert "Asha Devi <A&S>" in (await h.wait(agent, predicate=is_card))["text"]
        events = h.db(
            lambda s: s.scalars(
                select(LoanEvent).where(
                    LoanEvent.loan_id == loan.id, LoanEvent.kind == LoanEventKind.EDITED
                )
            ).all()
        )
        assert [(e.before, e.after) for e in events] == [
            ({"borrower_name": BORROWER}, {"borrower_name": "Asha Devi <A&S>"})
        ]
        history = await h.say(agent, f"/history {loan.number}")
        assert "Asha Devi" in history["text"]


async def test_edit_principal_after_a_payment_is_refused(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        loan = new_loan(h, agent)
        pay_directly(h, agent, loan, "10")
        fields = await h.say(agent, f"/edit {loan.number}")
        asked = await tap(h, agent, fields, "Principal", contains="Principal now")
        assert "₹10,000.00" in asked["text"]
        reply = await h.say(agent, "20000")
        assert reply["text"] == "The amount can only be changed before any payment is recorded."
        assert h.db(lambda s: s.get(Loan, loan.id).principal) == Decimal("10000.00")


async def test_another_agents_loan_is_not_found_like_a_missing_one(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, other = h.make_staff(Role.AGENT), h.make_staff(Role.AGENT)
        theirs = new_loan(h, other)
        for command in (
            "/pay {} 100",
            "/edit {}",
            "/close {}",
            "/promise {} 100 tomorrow",
            "/contact {}",
        ):
            foreign = (await h.say(agent, command.format(theirs.number)))["text"]
            missing = (await h.say(agent, command.format("NOPE-123")))["text"]
            assert foreign == f"No loan {theirs.number} found.", command
            assert missing == "No loan NOPE-123 found.", command
        assert count(h, Payment, Payment.loan_id == theirs.id) == 0


async def test_close_is_refused_while_money_is_owed(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, loan, card = await agent_card(h)
        refused = await tap(h, agent, card, "Close")
        assert refused["text"] == (
            f"Loan {loan.number} still has ₹10,000.00 to pay; it cannot be closed."
        )
        assert h.db(lambda s: s.get(Loan, loan.id).state) == LoanState.ACTIVE


async def test_close_a_loan_with_nothing_owed_after_confirmation(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        loan = new_loan(h, agent)

        def settle(session) -> None:  # owed nothing yet still active: e.g. migrated data
            row = session.get(Loan, loan.id)
            row.amount_paid = row.amount_payable

        h.db(settle)
        ask = await h.say(agent, f"/close {loan.number}")
        assert "Nothing is owed" in ask["text"]
        done = await tap(h, agent, ask, "Confirm", contains="closed")
        assert done["text"] == f"✅ Loan {loan.number} is closed."
        assert h.db(lambda s: s.get(Loan, loan.id).state) == LoanState.CLOSED


async def test_manager_writes_off_with_a_reason(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, manager = h.make_staff(Role.AGENT), h.make_staff(Role.MANAGER)
        loan = new_loan(h, agent)
        card = await open_card(h, manager, loan)
        await tap(h, manager, card, "Write off", contains="Send the reason")
        assert (await h.say(manager, "no"))["text"].startswith("Give a reason of at least 3")
        summary = await h.say(manager, "Borrower moved <abroad>", contains="Write off loan")
        assert "Reason: Borrower moved <abroad>" in summary["text"]
        assert "Outstanding: ₹10,000.00" in summary["text"]
        done = await tap(h, manager, summary, "Write off", contains="written off")
        assert done["buttons"] == []
        row = h.db(lambda s: s.get(Loan, loan.id))
        assert (row.state, row.state_reason) == (LoanState.WRITTEN_OFF, "Borrower moved <abroad>")


async def test_agent_has_no_write_off_or_reassign_and_forged_ones_are_refused(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, loan, card = await agent_card(h)
        labels = " ".join(b["text"] for b in card["buttons"])
        assert "Write off" not in labels and "Reassign" not in labels and "Archive" not in labels
        answer = await h.press(agent, card, data(CB.LOAN_WRITE_OFF, loan.id, 1), force=True)
        assert answer["text"] == "Only managers and admins may write off loans."
        answer = await h.press(agent, card, data(CB.LOAN_ASSIGN, loan.id, 1), force=True)
        assert answer["text"] == "Only managers and admins may reassign loans."
        answer = await h.press(agent, card, data(CB.LOAN_DELETE, loan.id, 1), force=True)
        assert answer["text"] == "Only admins may archive loans."
        assert (await h.say(agent, f"/assign {loan.number} {agent.name}"))["text"] == (
            "Only managers and admins may look up staff."
        )
        await h.silence(agent, 0.3)
        assert h.db(lambda s: s.get(Loan, loan.id).state) == LoanState.ACTIVE


async def test_manager_reassigns_by_button_and_by_command(settings, committed):
    async with BotHarness(settings, committed) as h:
        first = h.make_staff(Role.AGENT, name="Ravi First")
        second = h.make_staff(Role.AGENT, name="Meena Second")
        manager = h.make_staff(Role.MANAGER)
        loan = new_loan(h, first)
        card = await open_card(h, manager, loan)
        choices = await tap(h, manager, card, "Reassign", contains="to whom")
        labels = [b["text"] for b in choices["buttons"]]
        assert any("Meena Second" in label for label in labels)
        assert not any("Ravi First" in label for label in labels), "not to its own holder"
        done = await tap(h, manager, choices, "Meena Second", contains="now with")
        assert "now with Meena Second" in done["text"]
        assert h.db(lambda s: s.get(Loan, loan.id).agent_id) == second.staff_id
        await h.wait(manager, predicate=is_card)

        done = await h.say(manager, f"/assign {loan.number} ravi")
        assert done["text"] == f"👤 Loan {loan.number} is now with Ravi First."
        assert h.db(lambda s: s.get(Loan, loan.id).agent_id) == first.staff_id


async def test_delete_archives_with_a_reason_and_admin_restores(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, admin = h.make_staff(Role.AGENT), h.make_staff(Role.ADMIN)
        plain, paid = new_loan(h, agent), new_loan(h, agent)
        pay_directly(h, agent, paid, "100")

        ask = await h.say(admin, f"/delete {paid.number}")
        assert "never deleted" in ask["text"] and "Send the reason" in ask["text"]
        assert (await h.say(admin, "no"))["text"].startswith("Give a reason of at least 3")
        summary = await h.say(admin, "Duplicate <entry>", contains="Archive loan")
        assert "Reason: Duplicate <entry>" in summary["text"]
        assert h.db(lambda s: s.get(Loan, paid.id).archived_at) is None, "not before the press"
        done = await tap(h, admin, summary, "Archive", contains="archived")
        assert done["text"].startswith(f"🗄 Loan {paid.number} is archived.")
        card = await h.wait(admin, predicate=is_card)
        assert "Archived" in card["text"] and "Duplicate <entry>" in card["text"]
        assert [b["text"] for b in card["buttons"]] == ["📜 History", "♻️ Restore"]

        # Every row kept; the agent no longer finds it, the same as a loan that never was.
        row = h.db(lambda s: s.get(Loan, paid.id))
        assert row.archive_reason == "Duplicate <entry>" and row.amount_paid == Decimal("100")
        assert count(h, Payment, Payment.loan_id == paid.id) == 1
        listed = await h.say(admin, "/list")
        labels = [b["text"] for b in listed["buttons"]]
        assert not any(paid.number in label for label in labels)
        archived = await tap(
            h,
            admin,
            listed,
            "Archived",
            predicate=lambda m: any(paid.number in b["text"] for b in m["buttons"]),
        )
        assert not any(plain.number in b["text"] for b in archived["buttons"])
        agent_list = await h.say(agent, "/list")
        assert not any("Archived" in b["text"] for b in agent_list["buttons"])
        gone = await h.say(agent, f"/loan {paid.number}")
        assert "No loan" in gone["text"]
        refused = await h.say(agent, f"/restore {paid.number}")
        assert refused["text"] == "Only admins may restore loans."

        ask = await tap(h, admin, card, "Restore", contains="Restore loan")
        summary = await h.say(admin, "archived by mistake", contains="Restore loan")
        await tap(h, admin, summary, "Restore", contains="back in the book")
        assert h.db(lambda s: s.get(Loan, paid.id).archived_at) is None
        back = await h.say(agent, f"/loan {paid.number}")
        assert paid.number in back["text"] and "No loan" not in back["text"]
        actions = h.db(
            lambda s: s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.target_id == str(paid.id))
                .order_by(AuditEvent.id)
            ).all()
        )
        assert actions[-2:] == [AuditAction.LOAN_ARCHIVED, AuditAction.LOAN_RESTORED]
        assert count(h, Loan, Loan.id == plain.id) == 1


async def test_dispute_from_the_card_then_a_manager_rejects_it(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, loan, card = await agent_card(h)
        manager = h.make_staff(Role.MANAGER)
        await tap(h, agent, card, "Dispute", contains="What does the borrower dispute")
        assert (await h.say(agent, "no"))["text"].startswith("Give a note of at least 3")
        summary = await h.say(agent, "Says <he> repaid in March", contains="Dispute loan")
        assert "Note: Says <he> repaid in March" in summary["text"]
        done = await tap(h, agent, summary, "Confirm", contains="disputed")
        assert done["text"].startswith(f"⚖️ Loan {loan.number} is disputed")
        held = await h.wait(agent, predicate=is_card)
        assert "Disputed" in held["text"] and "Says <he> repaid in March" in held["text"]
        assert "⚖️ Dispute" not in [b["text"] for b in held["buttons"]]
        assert "📊 Risk " in held["text"] and "/100" in held["text"]
        assert (await h.say(agent, f"/resolve {loan.number}"))["text"] == (
            "Only managers and admins may resolve disputes."
        )
        today = await h.say(manager, "/today")
        assert loan.number in today["text"] and "disputed" in today["text"]

        mcard = await open_card(h, manager, loan)
        choices = await tap(h, manager, mcard, "Resolve", contains="How is it resolved")
        why = await tap(h, manager, choices, "Rejected", contains="Send the reason")
        assert "Send the reason" in why["text"]
        await h.say(manager, "the receipt book shows it unpaid", contains="resolved (")
        back = await h.wait(manager, predicate=is_card)
        assert "Disputed" not in back["text"]
        row = h.db(
            lambda s: s.scalars(
                select(AuditEvent).where(AuditEvent.action == AuditAction.HOLD_RESOLVED)
            ).one()
        )
        assert row.details["outcome"] == "rejected" and row.staff_id == manager.staff_id


async def test_hardship_by_command_pauses_until_a_date(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        loan = new_loan(h, agent)
        await h.say(agent, f"/hardship {loan.number}", contains="Until which day")
        assert "That date has passed" in (await h.say(agent, "01/01/2020"))["text"]
        await h.say(agent, "+10", contains="Why?")
        summary = await h.say(agent, "lost his job", contains="Pause loan")
        await tap(h, agent, summary, "Confirm", contains="paused")
        card = await h.wait(agent, predicate=is_card)
        assert "Hardship pause" in card["text"] and "lost his job" in card["text"]
        again = await h.say(agent, f"/dispute {loan.number}")
        assert "already disputed or paused" in again["text"]
