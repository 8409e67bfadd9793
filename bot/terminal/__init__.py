"""The demo's terminal chat: you are a Telegram user of the real bot, through the sandbox.

What you type goes to the sandbox Bot API as that user's message; what the bot sends or
edits is shown with its inline keyboard as numbered buttons (type the number to press).
The SMS side reaches this module only as callables (DemoHooks), so bot never imports
scheduler; `vasooli demo` (cli/demo.py) wires the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import SecretStr

from bot.sandbox import TelegramSandbox
from bot.terminal.input import parse_clock, plain, seconds, split_sms, stdin_lines, unless_stopped
from bot.terminal.view import HELP, View, label
from db.sample.demo import DemoPerson

log = logging.getLogger(__name__)

BOT_USERNAME = "vasooli_demo_bot"
NEWCOMER = DemoPerson("new", None, "Ravi Kumar", 800_000_001, "")  # not staff: for invites
FIRST_ANSWER = 10.0  # seconds a scripted line waits for the bot's first answer
QUIET = 0.6  # ... then until the bot has been quiet this long
_INVITE = re.compile(r"start=([A-Za-z0-9_-]{8,64})")


@dataclass(frozen=True)
class DemoHooks:
    """The worker side's actions, given by the wiring as plain callables."""

    text_in: Callable[[str, str], Awaitable[str]]
    move_clock: Callable[[timedelta], Awaitable[str]]
    wait_sms: Callable[[float], Awaitable[bool]]


def open_sandbox(people: Iterable[DemoPerson], files_dir: str) -> TelegramSandbox:
    """A started sandbox Bot API that knows the demo's people (their chats open)."""
    sandbox = TelegramSandbox(bot_username=BOT_USERNAME, files_dir=files_dir).start()
    for person in people:
        sandbox.user(person.telegram_user_id, person.name, started=True)
    # Open too: after an earlier run of the demo this person may be staff with a chat.
    sandbox.user(NEWCOMER.telegram_user_id, NEWCOMER.name, started=True)
    return sandbox


def bot_settings_update(sandbox: TelegramSandbox) -> dict[str, Any]:
    """What the bot's Settings need to talk to the sandbox instead of Telegram."""
    return {
        "telegram_bot_token": SecretStr(sandbox.token),
        "telegram_api_base_url": sandbox.base_url,
        "telegram_webhook_url": None,
        "telegram_bot_username": BOT_USERNAME,
    }


class TerminalChat:
    """Plays one person at a time; shows what the bot does in their chat."""

    def __init__(
        self,
        sandbox: TelegramSandbox,
        people: Sequence[DemoPerson],
        hooks: DemoHooks,
        *,
        start_as: str = "agent",
        view: View | None = None,
    ) -> None:
        self.sb, self.hooks = sandbox, hooks
        self.people = {p.key: p for p in (*people, NEWCOMER)}
        self.me = self.people.get(start_as) or next(iter(self.people.values()))
        self.view = view or View()
        self.keys: list[tuple[int, str, str]] = []  # (message id, data, label) of [1], [2]..
        self.shown: dict[int, int] = {}  # chat -> newest message id shown there
        self.texts: dict[tuple[int, int], str] = {}  # (chat, message id) -> text shown
        self.queries: set[str] = set()
        self.invite: str | None = None
        self.activity = asyncio.Event()  # the bot did something in my chat
        self.echo = True  # show typed lines (off for an interactive terminal)
        self.held: list[tuple[str, str]] | None = []  # SMS lines until the banner is out
        self.interactive = False  # a person types: prompt again after output between inputs
        self.busy = False  # an input is being handled (its answer is awaited)
        self._reprompt: asyncio.TimerHandle | None = None

    # -- what the bot does (sandbox thread -> our loop) -------------------------------------

    @contextlib.contextmanager
    def attached(self) -> Any:
        """Hear the bot's actions while the block runs."""
        loop = asyncio.get_running_loop()

        def hear(event: dict) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._event, event)

        unsubscribe = self.sb.listen(hear)
        try:
            yield self
        finally:
            unsubscribe()

    def _event(self, event: dict) -> None:
        self._prompt_soon()
        action = event.get("action")
        if action == "answer":
            if event.get("callback_query_id") in self.queries:
                self.activity.set()
                if event.get("text"):
                    self.view.toast(event["text"], bool(event.get("show_alert")))
            return
        message, chat = event.get("message"), event.get("chat_id")
        if message is None or action not in ("send", "edit", "delete"):
            return
        if found := _INVITE.search(message.get("text") or ""):
            self.invite = found.group(1)
        if chat != self.me.telegram_user_id:
            self._elsewhere(chat, action)
        elif action == "delete":
            self.activity.set()
            self._deleted(message)
        else:
            self.activity.set()
            self._show(message, edited=action == "edit")

    def _elsewhere(self, chat: int | None, action: str) -> None:
        other = next((p for p in self.people.values() if p.telegram_user_id == chat), None)
        if other is not None and action == "send":
            self.view.note(f"   (a new message for {label(other)}: `:as {other.key}` to read it)")

    def _deleted(self, message: dict) -> None:
        mine = not message.get("message", {}).get("from", {}).get("is_bot")
        self.view.note(
            "   (the bot deleted your message)"
            if mine
            else f"   (the bot deleted its message #{message['message_id']})"
        )
        if any(key[0] == message["message_id"] for key in self.keys):
            self.keys = []

    def _show(self, message: dict, edited: bool) -> None:
        buttons = [
            (message["message_id"], b["callback_data"], b.get("text", ""))
            for b in message.get("buttons", [])
            if "callback_data" in b
        ]
        if buttons:
            self.keys = buttons
        elif not edited or any(key[0] == message["message_id"] for key in self.keys):
            self.keys = []  # the newest message asks for text: numbers are text now
        chat, text = message["chat_id"], message.get("text") or ""
        self.shown[chat] = max(self.shown.get(chat, 0), message["message_id"])
        key = (chat, message["message_id"])
        if edited and not buttons and self.texts.get(key) == text:
            return  # only its buttons went away (pressed): nothing new to read
        self.texts[key] = text
        self.view.bot(message, numbered=bool(buttons), edited=edited)

    def banner(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.view.note(line, "bold" if line.startswith("Vasooli demo") else "")
        held, self.held = self.held or [], None
        for line, style in held:
            self.view.sms(line, style)

    def sms(self, line: str, style: str) -> None:
        """The SMS feed's sink: one line per message and status change."""
        if self.held is not None:
            self.held.append((line, style))
        else:
            self.view.sms(line, style)
            self._prompt_soon()

    def _prompt_soon(self) -> None:
        """Show the prompt again once output between two inputs has paused."""
        if not self.interactive or self.busy:
            return
        if self._reprompt is not None:
            self._reprompt.cancel()
        self._reprompt = asyncio.get_running_loop().call_later(0.4, self._prompt)

    def _prompt(self) -> None:
        self.view.prompt(self.me.name.split()[0])

    # -- what you do --------------------------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one typed line; False when it asks to quit."""
        line = line.strip()
        if not line:
            return True
        if self.echo:
            self.view.you(self.me.name.split()[0], line)
        if line.startswith(":"):
            return await self._command(line)
        if line.isdigit() and 1 <= int(line) <= len(self.keys):
            await self._press(self.keys[int(line) - 1])
        else:
            await self._say(line)
        return True

    async def _say(self, text: str) -> None:
        if "{invite}" in text:
            if self.invite is None:
                self.view.note("   (no invite code yet: an admin makes one with /invite agent)")
                return
            text = text.replace("{invite}", self.invite)
        await self._to_bot(lambda: self._send_text(text))

    def _send_text(self, text: str) -> None:
        self.sb.send_text(self.me.telegram_user_id, text)

    async def _to_bot(self, act: Callable[[], Any]) -> bool:
        """Do act (a send or a press), then wait until the bot has answered and gone quiet.

        False when the sandbox refused the act (a button that is not there any more)."""
        self.activity.clear()
        try:
            result = act()
        except ValueError:
            return False
        if isinstance(result, str):
            self.queries.add(result)
        await self.settle()
        return True

    async def settle(self, first: float = FIRST_ANSWER) -> None:
        """Until the bot's first answer (up to `first` s), then until QUIET s of quiet."""
        try:
            await asyncio.wait_for(self.activity.wait(), first)
        except TimeoutError:
            self.view.note(f"   (nothing from the bot within {first:.0f} s)")
            return
        for _ in range(int(15 / QUIET)):
            self.activity.clear()
            try:
                await asyncio.wait_for(self.activity.wait(), QUIET)
            except TimeoutError:
                return

    async def _command(self, line: str) -> bool:
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        if name in (":quit", ":q", ":exit"):
            return False
        handler = {
            ":help": self._help,
            ":as": self._as,
            ":tap": self._tap,
            ":text": self._text,
            ":sms": self._sms,
            ":clock": self._clock,
            ":wait": self._wait,
            ":wait-sms": self._wait_sms,
            ":wait-bot": self._wait_bot,
        }.get(name)
        if handler is None:
            self.view.note(f"   (unknown command {name}: :help lists them)")
        else:
            await handler(rest)
        return True

    async def _help(self, rest: str) -> None:
        people = ", ".join(f"{key} ({label(p)})" for key, p in self.people.items())
        self.view.note(HELP.format(people=people), "")

    async def _as(self, rest: str) -> None:
        person = self.people.get(rest.lower())
        if person is None:
            self.view.note(f"   (who? one of: {', '.join(self.people)})")
            return
        self.me, self.keys = person, []
        self.view.note(f"   You are now {label(person)}.", "bold")
        for message in self.sb.sent(person.telegram_user_id):
            if (
                message["message_id"] > self.shown.get(person.telegram_user_id, 0)
                and not message["deleted"]
            ):
                self._show(message, edited=False)

    async def _press(self, key: tuple[int, str, str]) -> None:
        message_id, data, _ = key
        user = self.me.telegram_user_id
        if not await self._to_bot(lambda: self.sb.press(user, message_id, data)):
            self.view.note("   (that button is not there any more)")

    async def _tap(self, rest: str) -> None:
        """The newest keyboard's button with that label (any case, emoji aside; or the one
        label it begins), else an older message's button with exactly that label."""
        found = next((k for k in self.keys if plain(k[2]) == plain(rest)), None)
        starting = [k for k in self.keys if plain(k[2]).startswith(plain(rest))]
        if found is None and len(starting) == 1 and rest.strip():
            found = starting[0]  # "Send" for "✅ Send to 125"
        if found is not None:
            await self._press(found)
            return
        if not await self._to_bot(lambda: self.sb.tap(self.me.telegram_user_id, rest)):
            offered = ", ".join(repr(k[2]) for k in self.keys) or "none"
            self.view.note(f"   (no button {rest!r} here; the newest buttons: {offered})")

    async def _text(self, rest: str) -> None:
        if rest:
            await self._say(rest)

    async def _sms(self, rest: str) -> None:
        phone, body = split_sms(rest)
        self.view.note("   " + await self.hooks.text_in(phone, body), "magenta")

    async def _clock(self, rest: str) -> None:
        delta = parse_clock(rest)
        if delta is None:
            self.view.note("   (move the clock forward like :clock +2d, +6h or +1w)")
            return
        self.view.note("   " + await self.hooks.move_clock(delta), "bold magenta")

    async def _wait(self, rest: str) -> None:
        await asyncio.sleep(seconds(rest, 1.0))

    async def _wait_bot(self, rest: str) -> None:
        """Until the bot next writes in this chat (an SMS relayed, a job's message)."""
        self.activity.clear()
        await self.settle(seconds(rest, 30.0))

    async def _wait_sms(self, rest: str) -> None:
        limit = seconds(rest, 60.0)
        if not await self.hooks.wait_sms(limit):
            self.view.note(f"   (SMS still on their way after {limit:.0f} s)")

    # -- the two ways to run ------------------------------------------------------------------

    async def run_script(self, lines: Iterable[str], stop: asyncio.Event) -> None:
        """Each line as typed (# comments skipped), until the end or stop."""
        for line in lines:
            if stop.is_set():
                return
            if line.lstrip().startswith("#"):
                continue
            if not await unless_stopped(self.handle(line), stop):
                return

    async def run_interactive(self, stop: asyncio.Event) -> None:
        """Read stdin line by line (no thread: the loop watches the descriptor)."""
        self.echo, self.interactive = not sys.stdin.isatty(), True
        self._prompt()
        async for line in stdin_lines(stop):
            self.view.prompt_open, self.busy = False, True
            if not await unless_stopped(self.handle(line), stop):
                return
            self.busy = False
            self._prompt()
