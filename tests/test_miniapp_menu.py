"""The dashboards' menu button: set per chat by role on login, taken back on logout.

Through the real bot and the sandbox Bot API, which answers setChatMenuButton as Telegram
does (https Web App URLs only, private chats only).
"""

from __future__ import annotations

import pytest
from telegram import Bot, MenuButtonWebApp, WebAppInfo
from telegram.error import BadRequest

from bot import texts
from bot.sandbox import TelegramSandbox
from db.models import Role
from tests.bot_harness import BotHarness

pytestmark = pytest.mark.e2e
PUBLIC = "https://vasooli.example"
COMMANDS = {"type": "commands"}


async def _log_in_again(h: BotHarness, who) -> None:
    assert (await h.say(who, "/logout"))["text"] == texts.LOGGED_OUT
    assert (await h.say(who, "/login"))["text"] == texts.LOGIN_ASK_PASSWORD
    h.send(who, who.password)
    assert (await h.wait(who))["text"] == texts.logged_in(who.name)


async def test_managers_and_admins_get_the_dashboards_button_agents_do_not(settings, committed):
    async with BotHarness(settings, committed, public_base_url=PUBLIC) as h:
        manager, agent = h.make_staff(Role.MANAGER), h.make_staff(Role.AGENT)
        await _log_in_again(h, manager)
        await _log_in_again(h, agent)
        assert h.sandbox.menu_button(manager.chat_id) == {
            "type": "web_app",
            "text": texts.DASHBOARDS_BUTTON,
            "web_app": {"url": f"{PUBLIC}/app/"},
        }
        assert h.sandbox.menu_button(agent.chat_id) == COMMANDS
        assert (await h.say(manager, "/logout"))["text"] == texts.LOGGED_OUT
        assert h.sandbox.menu_button(manager.chat_id) == COMMANDS


async def test_without_an_https_address_no_button_is_set(settings, committed):
    async with BotHarness(settings, committed, public_base_url="http://127.0.0.1:8080") as h:
        manager = h.make_staff(Role.MANAGER)
        await _log_in_again(h, manager)
        assert h.sandbox.calls("setChatMenuButton") == []
        assert h.sandbox.menu_button(manager.chat_id) == COMMANDS


async def test_the_sandbox_answers_set_chat_menu_button_like_telegram():
    with TelegramSandbox() as sandbox:
        sandbox.user(42, "Asha")
        async with Bot(sandbox.token, base_url=sandbox.base_url) as bot:
            app = MenuButtonWebApp("Dashboards", WebAppInfo(f"{PUBLIC}/app/"))
            assert await bot.set_chat_menu_button(chat_id=42, menu_button=app)
            assert (await bot.get_chat_menu_button(chat_id=42)).web_app.url == f"{PUBLIC}/app/"
            plain = MenuButtonWebApp("Dashboards", WebAppInfo("http://insecure.example/app/"))
            with pytest.raises(BadRequest, match=r"(?i)button_url_invalid"):
                await bot.set_chat_menu_button(chat_id=42, menu_button=plain)
            with pytest.raises(BadRequest, match=r"(?i)invalid chat_id"):
                await bot.set_chat_menu_button(chat_id=999, menu_button=app)
            assert await bot.set_chat_menu_button(chat_id=42)  # back to the default
            assert (await bot.get_chat_menu_button(chat_id=42)).type == "commands"
