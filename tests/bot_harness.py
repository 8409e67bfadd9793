"""End-to-end harness: the REAL bot Application, long-polling the sandbox Bot API over HTTP.

Use it from an async test with the `committed` fixture (the bot commits in its own threads):

    from tests.bot_harness import BotHarness

    async def test_something(settings, committed):
        async with BotHarness(settings, committed) as h:
            admin = h.make_staff(Role.ADMIN)            # active, password set, logged in
            reply = await h.say(admin, "/invite agent")  # the bot's first message after it
            assert "start=" in reply["text"]
            stranger = h.person("Ravi")                  # unknown to the bot
            await h.say(stranger, "/start")
            note = await h.wait(admin, contains="Access request")
            await h.press(admin, note, keyboards.data(CB.ACCESS_APPROVE, ...))

API (people are Person values or plain Telegram user ids):
- BotHarness(settings, session_factory, **overrides): overrides are Settings fields.
- person(name, username=None) -> Person: a new Telegram user (private chat id == user id).
- make_staff(role, password=PASSWORD, name=None, logged_in=True) -> Person: made through
  the services (invite + redeem, committed); logged_in=False ends the session.
- await say(who, text, contains=None, timeout=5) -> message: the user sends text; returns the
  bot's first non-deleted message sent or edited afterwards (containing `contains`).
  send(who, text, chat_id=None) -> the user's Message: sends without waiting (use this,
  not sandbox.send_text: it avoids a lock-order deadlock in the sandbox).
- await wait(who, contains=None, predicate=None, after=None, timeout=5) -> message: the first
  matching one after `after` (a sandbox.mark()), by default after who's last input.
- await silence(who, seconds=0.5): asserts the bot sends or edits nothing there from now on.
- await press(who, message, data, timeout=5) -> answer: presses a button (message dict or
  id; force=True for data the message does not offer) and returns the callback answer
  ({text, show_alert...}); what the bot then sends or edits: wait().
- deleted(who, message_id) -> bool: whether the bot deleted that (user's) message.
- menu(who) -> [command names] in that chat's scope; default_menu() likewise.
- await restart(): stop the Application cleanly and run a NEW one on the same database.
- db(fn, **kwargs): run a service in a committed transaction (for setup and checks).
- sandbox: the TelegramSandbox (sent(), last(), calls()...); app: the running Application.
Message dicts are the sandbox's snapshots: text (as shown), source (HTML as sent), buttons...
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from telegram.ext import Application

from bot.app import build_application
from bot.sandbox import TelegramSandbox
from db.config import Settings
from db.models import Role
from db.services.staff import members as staff_service

log = logging.getLogger(__name__)

TOKEN = "123:TEST"
BOT_USERNAME = "vasooli_test_bot"
PASSWORD = "correct horse battery"

# Telegram ids far from the factories' (10_000_000 + n) and random per run, so committed
# rows of tests running at the same time on one PostgreSQL database never collide.
_ids = itertools.count(random.randrange(10**11, 9 * 10**11, 10**6))


@dataclass(frozen=True)
class Person:
    """A Telegram user played by the test; staff_id/role when made staff."""

    user_id: int
    name: str
    username: str | None = None
    staff_id: int | None = None
    role: Role | None = None
    password: str | None = None

    @property
    def chat_id(self) -> int:
        return self.user_id


Who = Person | int


def _uid(who: Who) -> int:
    return who.user_id if isinstance(who, Person) else who


def _match(contains: str | None, predicate: Callable[[dict], bool] | None):
    def check(message: dict) -> bool:
        if message["deleted"] or not message.get("message", {}).get("from", {}).get("is_bot"):
            return False
        if contains is not None and contains not in message["text"]:
            return False
        return predicate is None or predicate(message)

    return check


class BotHarness:
    """A sandbox Bot API plus the real Application polling it; see the module docstring."""

    def __init__(
        self, settings: Settings, session_factory: sessionmaker[Session], **overrides: Any
    ) -> None:
        self.sandbox = TelegramSandbox(token=TOKEN, bot_username=BOT_USERNAME)
        self._base_settings = settings
        self._overrides = overrides
        self.factory = session_factory
        self.settings: Settings | None = None
        self.app: Application | None = None

    async def __aenter__(self) -> BotHarness:
        self.sandbox.start()
        self.settings = self._base_settings.model_copy(
            update={
                "telegram_bot_token": SecretStr(TOKEN),
                "telegram_api_base_url": self.sandbox.base_url,
                **self._overrides,
            }
        )
        try:
            await self._start_app()
        except BaseException:
            self.sandbox.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._stop_app()
        finally:
            self.sandbox.stop()

    async def _start_app(self) -> None:
        app = build_application(self.settings, self.factory)
        await app.initialize()
        if app.post_init:  # run_polling() would call it; the harness starts by hand
            await app.post_init(app)
        await app.start()
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        self.app = app

    async def _stop_app(self) -> None:
        app, self.app = self.app, None
        if app is None:
            return
        if app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()  # writes the persistence one last time

    async def restart(self) -> None:
        """Stop the Application cleanly and start a new one on the same database."""
        await self._stop_app()
        await self._start_app()

    # --- people ------------------------------------------------------------------------

    def person(self, name: str, username: str | None = None) -> Person:
        """A new Telegram user the bot has never seen."""
        user_id = next(_ids)
        self.sandbox.user(user_id, name, username)
        return Person(user_id=user_id, name=name, username=username)

    def make_staff(
        self,
        role: Role,
        *,
        password: str = PASSWORD,
        name: str | None = None,
        username: str | None = None,
        logged_in: bool = True,
    ) -> Person:
        """Active staff with a password, made through the services (committed)."""
        user_id = next(_ids)
        name = name or f"{role.value.title()} {user_id % 10_000}"
        # started=True: the chat is open, so the bot may write first (access requests).
        self.sandbox.user(user_id, name, username, started=True)
        invite = self.db(staff_service.create_invite, actor=None, role=role)
        result = self.db(
            staff_service.redeem_invite,
            code=invite.code,
            telegram_user_id=user_id,
            chat_id=user_id,
            name=name,
            username=username,
            password=password,
        )
        if not logged_in:
            self.db(staff_service.logout, telegram_user_id=user_id)
        return Person(
            user_id=user_id,
            name=result.staff.name,
            username=username,
            staff_id=result.staff.id,
            role=role,
            password=password,
        )

    def db(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        """fn(session, **kwargs) in its own committed transaction."""
        with self.factory() as session, session.begin():
            return fn(session, **kwargs)

    # --- talking -----------------------------------------------------------------------

    async def say(
        self, who: Who, text: str, *, contains: str | None = None, timeout: float = 5.0
    ) -> dict:
        """Send text as who; the bot's first message afterwards (containing `contains`)."""
        self.send(who, text)
        return await self.wait(who, contains=contains, timeout=timeout)

    def send(self, who: Who, text: str, chat_id: int | None = None) -> dict:
        """Send text as who without waiting (in a group when chat_id); returns the Message."""
        return self.sandbox.send_text(_uid(who), text, chat_id=chat_id)

    def edit(self, who: Who, message_id: int, text: str) -> dict:
        """who edits their message message_id to text (Telegram sends edited_message)."""
        return self.sandbox.edit_text(_uid(who), message_id, text)

    async def wait(
        self,
        who: Who,
        *,
        contains: str | None = None,
        predicate: Callable[[dict], bool] | None = None,
        after: int | None = None,
        timeout: float = 5.0,
    ) -> dict:
        """The bot's first message in who's chat that matches, sent or edited after `after`
        (a sandbox.mark()) or, by default, after who's last input."""
        return await self.sandbox.wait_for_async(
            _uid(who), _match(contains, predicate), timeout=timeout, after=after
        )

    async def silence(self, who: Who, seconds: float = 0.5) -> None:
        """Assert the bot sends or edits nothing in who's chat from now on for a while."""
        try:
            found = await self.wait(who, after=self.sandbox.mark(), timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"the bot said {found['text']!r}")

    async def press(
        self, who: Who, message: dict | int, data: str, *, force: bool = False, timeout: float = 5.0
    ) -> dict:
        """Press a button as who; returns the bot's answer to the callback query."""
        message_id = message["message_id"] if isinstance(message, dict) else message
        query_id = self.sandbox.press(_uid(who), message_id, data, force=force)
        return await self.sandbox.wait_answer_async(query_id, timeout=timeout)

    def deleted(self, who: Who, message_id: int) -> bool:
        """Whether the bot called deleteMessage for that message in who's chat."""
        return any(
            str(params.get("chat_id")) == str(_uid(who))
            and str(params.get("message_id")) == str(message_id)
            for _, params in self.sandbox.calls("deleteMessage")
        )

    def menu(self, who: Who) -> list[str]:
        """The command names set for who's chat (empty: the default menu applies)."""
        scope = {"type": "chat", "chat_id": _uid(who)}
        return [c["command"] for c in self.sandbox.commands(scope)]

    def default_menu(self) -> list[str]:
        """The command names of the default scope."""
        return [c["command"] for c in self.sandbox.commands("default")]
