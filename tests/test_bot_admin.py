"""End-to-end over HTTP: /invite, /requests, /staff and its buttons, /audit; forged buttons."""

from __future__ import annotations

import pytest

from bot import texts
from bot.keyboards import CB, data
from db.models import Role, StaffState
from db.services.staff import members as staff_service
from tests.bot_harness import BotHarness

pytestmark = pytest.mark.e2e


async def test_invite_needs_a_role_and_an_admin(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin, agent = h.make_staff(Role.ADMIN), h.make_staff(Role.AGENT)
        assert (await h.say(admin, "/invite"))["text"] == texts.INVITE_USAGE
        assert (await h.say(admin, "/invite boss"))["text"] == texts.INVITE_USAGE
        refused = await h.say(agent, "/invite agent")
        assert refused["text"] == "Only admins may invite staff."
        made = await h.say(admin, "/invite MANAGER")
        assert "new manager" in made["text"] and "t.me/vasooli_test_bot?start=" in made["text"]


async def test_requests_lists_pending_and_reject_tells_the_requester(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        omar = h.person("Omar", username="omar_q")
        await h.say(omar, "/start")
        listed = await h.say(admin, "/requests", contains="Omar")
        assert "@omar_q" in listed["text"]
        info = h.db(staff_service.get_staff, telegram_user_id=omar.user_id)
        mark = h.sandbox.mark()
        await h.press(admin, listed, data(CB.ACCESS_REJECT, info.id))
        assert "rejected" in (await h.wait(admin, contains="Omar", after=mark))["text"]
        assert (await h.wait(omar, after=mark))["text"] == texts.ACCESS_REJECTED
        info = h.db(staff_service.get_staff, telegram_user_id=omar.user_id)
        assert info.state == StaffState.REJECTED
        assert (await h.say(omar, "/start"))["text"] == texts.REJECTED_OR_BLOCKED
        assert (await h.say(omar, "/login"))["text"] == texts.NOT_STAFF


async def test_staff_buttons_disable_enable_and_change_role(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        agent = h.make_staff(Role.AGENT, name="Field Agent")
        listing = await h.say(admin, "/staff")
        assert listing["text"].startswith("Staff")
        assert any(b["text"].startswith("Field Agent") for b in listing["buttons"])

        await h.press(admin, listing, data(CB.STAFF_SHOW, agent.staff_id))
        card = await h.wait(admin, contains="Field Agent")
        assert "State: active" in card["text"]
        await h.press(admin, card, data(CB.STAFF_DISABLE, agent.staff_id))
        card = await h.wait(admin, contains="State: disabled")
        assert (await h.say(agent, "/help"))["source"] == texts.help_text(None, "Vasooli")
        assert (await h.say(agent, "/logout"))["text"] == texts.LOGGED_OUT
        assert (await h.say(agent, "/login"))["text"] == texts.DISABLED

        mark = h.sandbox.mark()
        await h.press(admin, card, data(CB.STAFF_ENABLE, agent.staff_id))
        card = await h.wait(admin, contains="State: active", after=mark)
        await h.press(admin, card, data(CB.STAFF_ROLE, agent.staff_id, "manager"))
        await h.wait(admin, contains="Role: manager")
        info = h.db(staff_service.get_staff, telegram_user_id=agent.user_id)
        assert info.role == Role.MANAGER and info.state == StaffState.ACTIVE

        back = await h.press(admin, card, data(CB.STAFF_LIST, 0), force=True)
        assert back["text"] is None
        assert (await h.wait(admin, contains="tap someone"))["buttons"]


async def test_last_admin_cannot_disable_themselves(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        listing = await h.say(admin, "/staff")
        answer = await h.press(admin, listing, data(CB.STAFF_DISABLE, admin.staff_id), force=True)
        assert answer["text"] == "You cannot disable yourself."
        info = h.db(staff_service.get_staff, telegram_user_id=admin.user_id)
        assert info.state == StaffState.ACTIVE


async def test_forged_buttons_are_ignored(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        agent = h.make_staff(Role.AGENT)
        listing = await h.say(admin, "/staff")
        for forged in ("stf:off:abc", "stf:off:1:2", "stf:role:1:king", "acc:ok:-5", "acc:ok:"):
            answer = await h.press(admin, listing, forged, force=True)
            assert answer["text"] == texts.BAD_BUTTON, forged
        assert (await h.press(admin, listing, "zzz:1", force=True))["text"] == texts.OLD_BUTTON
        answer = await h.press(agent, 1, data(CB.STAFF_DISABLE, admin.staff_id), force=True)
        assert answer["text"] == "Only admins may enable or disable staff."
        info = h.db(staff_service.get_staff, telegram_user_id=admin.user_id)
        assert info.state == StaffState.ACTIVE


async def test_manager_sees_a_plain_staff_list(settings, committed):
    async with BotHarness(settings, committed) as h:
        manager = h.make_staff(Role.MANAGER, name="Mona <Manager>")
        listing = await h.say(manager, "/staff")
        assert "Mona <Manager>" in listing["text"] and listing["buttons"] == []


async def test_audit_shows_latest_events_and_filters_by_name(settings, committed):
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN, name="Audrey Admin")
        agent = h.make_staff(Role.AGENT, name="Zed Unique", logged_in=False)
        await h.say(agent, "/login")
        await h.say(agent, "definitely wrong")
        log = await h.say(admin, "/audit Zed Unique")
        assert "for Zed Unique" in log["text"]
        assert "login failed" in log["text"] and "logout" in log["text"]
        assert "Audrey" not in log["text"]
        everyone = await h.say(admin, "/audit")
        assert "Latest" in everyone["text"] and "invite created" in everyone["text"]
        assert "No staff member matches" in (await h.say(admin, "/audit Nobody Here"))["text"]
        refused = await h.say(agent, "/audit")
        assert refused["text"] == texts.PLEASE_LOGIN
