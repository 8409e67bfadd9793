"""End-to-end over HTTP (issue 11): a write-off asked for in the chat, the approvers' cards,
Approve / Reject, the requester told, the other cards edited, /approvals, stale presses."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import texts
from db.models import ApprovalRequest, ApprovalState, Loan, LoanState, Role
from db.services.approvals.requests import withdraw
from tests.bot_harness import BotHarness
from tests.bot_helpers import actor_of, button, new_loan, open_card, pay_directly, tap

pytestmark = pytest.mark.e2e


async def _ask_write_off(h, manager, loan) -> dict:
    card = await open_card(h, manager, loan)
    await tap(h, manager, card, "Write off", contains="Send the reason")
    summary = await h.say(manager, "Borrower moved <abroad>", contains="Write off loan")
    return await tap(h, manager, summary, "Write off", contains="Request #")


async def test_a_write_off_is_approved_in_the_chat(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, manager = h.make_staff(Role.AGENT), h.make_staff(Role.MANAGER)
        admin, other = h.make_staff(Role.ADMIN), h.make_staff(Role.MANAGER)
        loan = new_loan(h, agent)
        pay_directly(h, agent, loan, "1000")
        asked = h.sandbox.mark()
        await _ask_write_off(h, manager, loan)
        card = await h.wait(admin, contains="Approval #", timeout=10)
        assert "write-off" in card["text"] and loan.number in card["text"]
        assert "Borrower moved &lt;abroad&gt;" not in card["text"]  # shown as text, escaped
        assert "Borrower moved <abroad>" in card["text"]
        assert "Write off ₹9,000.00 outstanding" in card["text"]
        assert f"Agent {agent.name}: 1 loans" in card["text"]
        other_card = await h.wait(other, contains="Approval #", timeout=10)
        # Nobody is sent their own request (the loan's card may still follow the request).
        with pytest.raises(TimeoutError):
            await h.wait(manager, contains="Approval #", after=asked, timeout=0.3)
        mark = h.sandbox.mark()
        await h.press(admin, card, button(card, "Approve"))
        told = await h.wait(manager, contains="was approved by", after=mark, timeout=10)
        assert loan.number in told["text"] and admin.name in told["text"]
        edited = await h.wait(other, contains=f"Approved by {admin.name}", after=mark, timeout=10)
        assert edited["message_id"] == other_card["message_id"] and edited["buttons"] == []
        assert h.db(lambda s: s.get(Loan, loan.id).state) == LoanState.WRITTEN_OFF
        # The other manager's late press on a stale card (forced: its buttons are gone).
        await h.press(other, other_card, button(other_card, "Approve"), force=True)
        late = await h.wait(other, contains="already approved", timeout=5)
        assert admin.name in late["text"]


async def test_reject_asks_a_reason_and_the_requester_hears_it(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, manager, admin = (h.make_staff(r) for r in (Role.AGENT, Role.MANAGER, Role.ADMIN))
        loan = new_loan(h, agent)
        await _ask_write_off(h, manager, loan)
        card = await h.wait(admin, contains="Approval #", timeout=10)
        ask = await tap(h, admin, card, "Reject", contains="Why reject")
        assert "Send the reason" in ask["text"]
        again = await h.say(admin, "no")
        assert again["text"].startswith("Give a reason of at least 3")
        mark = h.sandbox.mark()
        await h.say(admin, "She paid <half> today", contains="rejected")
        told = await h.wait(manager, contains="was rejected by", after=mark, timeout=10)
        assert "She paid &lt;half&gt; today" not in told["text"]
        assert "She paid <half> today" in told["text"]
        assert h.db(lambda s: s.get(Loan, loan.id).state) == LoanState.ACTIVE


async def test_a_card_pressed_after_a_withdrawal_is_refused(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, manager, admin = (h.make_staff(r) for r in (Role.AGENT, Role.MANAGER, Role.ADMIN))
        loan = new_loan(h, agent)
        await _ask_write_off(h, manager, loan)
        card = await h.wait(admin, contains="Approval #", timeout=10)
        approval_id = h.db(lambda s: s.scalars(select(ApprovalRequest.id)).one())
        h.db(withdraw, actor=actor_of(manager), approval_id=approval_id)
        await h.press(admin, card, button(card, "Approve"), force=True)
        refused = await h.wait(admin, contains="was withdrawn by", timeout=5)
        assert manager.name in refused["text"]
        await h.press(admin, card, button(card, "Reject"), force=True)
        await h.wait(admin, contains="was withdrawn by", timeout=5)
        assert h.db(lambda s: s.get(Loan, loan.id).state) == LoanState.ACTIVE
        row = h.db(lambda s: s.get(ApprovalRequest, approval_id).state)
        assert row is ApprovalState.WITHDRAWN


async def test_approvals_lists_pending_requests_and_opens_them(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent, manager, admin = (h.make_staff(r) for r in (Role.AGENT, Role.MANAGER, Role.ADMIN))
        loan = new_loan(h, agent)
        await _ask_write_off(h, manager, loan)
        listed = await h.say(admin, "/approvals", contains="Waiting for approval")
        assert loan.number in listed["text"] and manager.name in listed["text"]
        shown = await tap(h, admin, listed, "#", contains="Approval #")
        assert button(shown, "Approve") and button(shown, "Reject")
        mine = await h.say(manager, "/approvals", contains="Waiting for approval")
        own = await tap(h, manager, mine, "#", contains="Approval #")
        assert button(own, "Withdraw")
        assert (await h.say(agent, "/approvals"))["text"] == texts.APPROVALS_NONE
