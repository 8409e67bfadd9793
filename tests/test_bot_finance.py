"""End-to-end over HTTP: the finance role as admins make it and as it sees the bot."""

from __future__ import annotations

import pytest

from bot import texts
from bot.keyboards import CB, data
from db.models import Role
from db.services.staff import members as staff_service
from tests.bot_harness import BotHarness
from tests.bot_helpers import new_loan, open_card

pytestmark = pytest.mark.e2e

CHANGES = {"new", "pay", "promise", "contact", "edit", "close", "assign", "remind", "invite"}


async def test_admins_invite_finance_and_make_staff_finance(settings, committed) -> None:
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        made = await h.say(admin, "/invite finance")
        assert "Invite for a new finance" in made["text"]
        agent = h.make_staff(Role.AGENT, name="Later Finance")
        await h.press(admin, (await h.say(admin, "/staff")), data(CB.STAFF_SHOW, agent.staff_id))
        card = await h.wait(admin, contains="Later Finance")
        assert "Make finance" in [b["text"] for b in card["buttons"]]
        await h.press(admin, card, data(CB.STAFF_ROLE, agent.staff_id, "finance"))
        await h.wait(admin, contains="Role: finance")
        info = h.db(staff_service.get_staff, telegram_user_id=agent.user_id)
        assert info.role is Role.FINANCE


async def test_finance_reads_and_its_menu_has_no_changes(settings, committed) -> None:
    async with BotHarness(settings, committed) as h:
        agent, finance = h.make_staff(Role.AGENT), h.make_staff(Role.FINANCE)
        loan = new_loan(h, agent)
        card = await open_card(h, finance, loan)
        assert [b["text"] for b in card["buttons"]] == ["📜 History", "🧾 Statement"]
        menu = {c.name for c in texts.commands_for(Role.FINANCE)}
        assert {"loan", "find", "stats", "export", "statement", "audit"} <= menu
        assert not menu & CHANGES
        assert "/export" in (await h.say(finance, "/help"))["text"]
        refused = await h.say(finance, f"/contact {loan.number}")
        assert refused["text"] == (
            "Only agents, managers and admins may change loans; finance reads only."
        )
