"""A local Telegram Bot API, and a side door to play the people who use the bot.

The real python-telegram-bot Application talks to it over HTTP exactly as it talks to
Telegram (point ``base_url``/``base_file_url`` at it), meeting Telegram's answers and
errors, so the bot's code paths are the production ones. Tests and ``vasooli demo`` use
the side door to write as a user, press buttons and read what the bot did:

    with TelegramSandbox(token="123:ABC") as sb:
        app = ApplicationBuilder().token(sb.token).base_url(sb.base_url)
              .base_file_url(sb.base_file_url).build()
        sb.user(42, "Asha")
        sb.send_text(42, "/start")
        reply = sb.wait_for(42, lambda m: "Welcome" in m["text"])

The server runs uvicorn on 127.0.0.1 (a free port) in a background thread with its own
event loop; every side-door method is thread-safe. Module layout: world (state),
http (server), methods / media / settings (Bot API methods), html (Telegram's HTML
rules), door (the people's actions).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

import uvicorn

from bot.sandbox import door
from bot.sandbox.http import BotApiServer
from bot.sandbox.settings import scope_key
from bot.sandbox.world import ApiError, Fault, Listener, World

log = logging.getLogger(__name__)

T = TypeVar("T")
Predicate = Callable[[dict], bool]
DEFAULT_TOKEN = "123456789:SANDBOX-token-for-local-use-only"
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class TelegramSandbox:
    """A Telegram Bot API server on localhost plus the side door (see the module doc)."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        bot_username: str = "vasooli_bot",
        files_dir: str | None = None,
        bot_name: str = "Vasooli",
    ) -> None:
        bot_id, sep, secret = token.partition(":")
        if not (bot_id.isdigit() and sep and secret):
            raise ValueError("a bot token looks like '<bot id>:<secret>'")
        self.token = token
        self._files_dir = files_dir
        self._own_files_dir = False
        bot_user = {
            "id": int(bot_id),
            "is_bot": True,
            "first_name": bot_name,
            "username": bot_username,
        }
        self._world = World(bot_user=bot_user)
        self._server: BotApiServer | None = None
        self._uvicorn: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's root, e.g. http://127.0.0.1:PORT (the side door is under /sandbox)."""
        if not self._port:
            raise RuntimeError("the sandbox is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """For ApplicationBuilder().base_url(): PTB appends the token, then /method."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ApplicationBuilder().base_file_url()."""
        return f"{self.url}/file/bot"

    @property
    def files_dir(self) -> str:
        """Where uploaded photos and documents are saved (set once started)."""
        return self._world.files_dir

    def start(self, timeout: float = 10.0) -> TelegramSandbox:
        """Serve on a free port of 127.0.0.1; returns once requests are accepted."""
        if self._thread is not None:
            raise RuntimeError("the sandbox is already started")
        self._prepare_files_dir()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # bound here so the port is known before serving
        self._port = sock.getsockname()[1]
        self._server = BotApiServer(self._world, self.token)
        config = uvicorn.Config(
            self._server.app,
            log_config=None,  # leave the process's logging setup alone
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name="telegram-sandbox", daemon=True
        )
        self._thread.start()
        self._await_started(timeout)
        log.info("telegram sandbox serving on %s", self.url)
        return self

    def _prepare_files_dir(self) -> None:
        if self._files_dir is None:
            self._files_dir = tempfile.mkdtemp(prefix="telegram-sandbox-")
            self._own_files_dir = True
        self._world.files_dir = self._files_dir

    def _serve(self, sock: socket.socket) -> None:
        assert self._uvicorn is not None
        try:
            asyncio.run(self._uvicorn.serve(sockets=[sock]))
        except Exception:  # logged: the starting thread reports that it never came up
            log.exception("telegram sandbox server crashed")
        finally:
            sock.close()

    def _await_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not (self._uvicorn and self._uvicorn.started):
            if not (self._thread and self._thread.is_alive()) or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the telegram sandbox did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Shut the server down (long polls end at once) and join its thread."""
        if self._server is not None:
            self._server.request_stop()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                log.warning("telegram sandbox thread did not stop within 10 s")
        self._thread = self._uvicorn = self._server = None
        self._port = 0
        if self._own_files_dir and self._files_dir:
            shutil.rmtree(self._files_dir, ignore_errors=True)
            self._files_dir, self._own_files_dir = None, False

    def __enter__(self) -> TelegramSandbox:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the people -------------------------------------------------------------------------

    def user(
        self, user_id: int, first_name: str, username: str | None = None, started: bool = False
    ) -> dict:
        """Register a person (private chat id == user id). The chat opens when they first
        write; started=True opens it now, so the bot may message them first."""
        return door.add_user(self._world, user_id, first_name, username, started)

    def group(self, chat_id: int, title: str) -> dict:
        """A group chat (negative id) the bot is in; users post there with chat_id=."""
        return door.add_group(self._world, chat_id, title)

    def send_text(
        self, user_id: int, text: str, chat_id: int | None = None, reply_to: int | None = None
    ) -> dict:
        """The user writes text (in their private chat unless chat_id); returns the Message."""
        return door.send_text(self._world, user_id, text, chat_id, reply_to)

    def edit_text(
        self, user_id: int, message_id: int, text: str, chat_id: int | None = None
    ) -> dict:
        """The user edits their message message_id (an edited_message update); returns it."""
        return door.edit_text(self._world, user_id, message_id, text, chat_id)

    def press(
        self,
        user_id: int,
        message_id: int,
        callback_data: str,
        chat_id: int | None = None,
        force: bool = False,
    ) -> str:
        """The user presses a button of a bot message; returns the callback query id.
        ValueError if the message shows no such button, unless force=True."""
        return door.press(self._world, user_id, message_id, callback_data, chat_id, force)

    def tap(self, user_id: int, label: str, chat_id: int | None = None) -> str:
        """Press the button labelled `label` on the newest bot message showing one."""
        return door.tap(self._world, user_id, label, chat_id)

    def block(self, chat_id: int) -> None:
        """The user blocks the bot: sends to the chat get 403 'bot was blocked by the user'."""
        with self._world.lock:
            self._world.blocked.add(chat_id)

    def unblock(self, chat_id: int) -> None:
        with self._world.lock:
            self._world.blocked.discard(chat_id)

    # -- what the bot did -------------------------------------------------------------------

    def sent(self, chat_id: int) -> list[dict]:
        """The bot's messages in a chat, oldest first, as they stand now (see Stored.snapshot:
        text, source, entities, reply_markup, buttons, deleted, edits, photo, document)."""
        with self._world.lock:
            return [stored.snapshot() for stored in self._world.bot_messages(chat_id)]

    def last(self, chat_id: int) -> dict | None:
        """The bot's newest message in the chat that is not deleted, or None."""
        visible = [message for message in self.sent(chat_id) if not message["deleted"]]
        return visible[-1] if visible else None

    def mark(self) -> int:
        """A point in time for wait_for(after=...): only later sends and edits count."""
        with self._world.lock:
            return self._world.seq

    def _after(self, chat_id: int, after: int | None) -> int:
        with self._world.lock:
            return self._world.input_marks.get(chat_id, 0) if after is None else after

    def wait_for(
        self,
        chat_id: int,
        predicate: Predicate | None = None,
        timeout: float = 5.0,
        after: int | None = None,
    ) -> dict:
        """Block until the bot sends or edits a message in the chat matching predicate.

        Counts actions after `after` (a mark()); by default, after the last send_text /
        press into that chat. Returns the message as it stands; TimeoutError otherwise.
        """
        since = self._after(chat_id, after)
        found = self._world.wait_until(
            lambda: self._world.find_action(chat_id, predicate, since), timeout
        )
        return self._found(found, chat_id, timeout)

    async def wait_for_async(
        self,
        chat_id: int,
        predicate: Predicate | None = None,
        timeout: float = 5.0,
        after: int | None = None,
    ) -> dict:
        """wait_for for async tests: waits without blocking the caller's event loop."""
        since = self._after(chat_id, after)
        found = await self._wait_async(
            lambda: self._world.find_action(chat_id, predicate, since), timeout
        )
        return self._found(found, chat_id, timeout)

    def _found(self, found: dict | None, chat_id: int, timeout: float) -> dict:
        if found is None:
            raise TimeoutError(
                f"no matching bot message in chat {chat_id} within {timeout} s; "
                f"the bot's latest there:\n{self._world.describe(chat_id)}"
            )
        return found

    async def _wait_async(self, probe: Callable[[], T | None], timeout: float) -> T | None:
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def poke(event: dict) -> None:
            with contextlib.suppress(RuntimeError):  # the caller's loop has closed
                loop.call_soon_threadsafe(changed.set)

        unsubscribe = self._world.listen(poke)
        try:
            deadline = loop.time() + timeout
            while (found := probe()) is None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
                changed.clear()  # cleared after waking; probe() runs again before waiting
            return found
        finally:
            unsubscribe()

    def wait_until_polled(self, timeout: float = 5.0) -> None:
        """Block until a getUpdates request is waiting (to test that updates wake it)."""
        if self._world.wait_until(lambda: self._world.polling or None, timeout) is None:
            raise TimeoutError(f"no getUpdates request waited within {timeout} s")

    @property
    def callback_answers(self) -> dict[str, dict]:
        """callback query id -> {text, show_alert, url, cache_time}, for answered queries."""
        with self._world.lock:
            return {
                query_id: dict(query["answer"])
                for query_id, query in self._world.queries.items()
                if query["answer"]
            }

    def wait_answer(self, query_id: str, timeout: float = 5.0) -> dict:
        """Block until the bot answers the callback query; returns the answer."""
        found = self._world.wait_until(lambda: self.callback_answers.get(query_id), timeout)
        if found is None:
            raise TimeoutError(f"callback query {query_id} was not answered in {timeout} s")
        return found

    async def wait_answer_async(self, query_id: str, timeout: float = 5.0) -> dict:
        found = await self._wait_async(lambda: self.callback_answers.get(query_id), timeout)
        if found is None:
            raise TimeoutError(f"callback query {query_id} was not answered in {timeout} s")
        return found

    def commands(self, scope: dict | str | None = None, language_code: str = "") -> list[dict]:
        """Commands set for a scope: None/'default', a type name, or a scope dict such as
        {"type": "chat", "chat_id": 42} (what BotCommandScopeChat(42).to_dict() gives)."""
        if isinstance(scope, str):
            scope = {"type": scope}
        key = scope_key(scope, language_code)
        with self._world.lock:
            return copy.deepcopy(self._world.commands.get(key, []))

    def menu_button(self, chat_id: int | None = None) -> dict:
        """The menu button a chat shows (getChatMenuButton's answer)."""
        with self._world.lock:
            button = self._world.menu_buttons.get(chat_id) or self._world.menu_buttons.get(None)
            return copy.deepcopy(button or {"type": "commands"})

    def calls(self, method: str | None = None) -> list[tuple[str, dict]]:
        """Bot API calls received (name, parameters), oldest first; optionally one method."""
        with self._world.lock:
            return [
                (name, dict(params))
                for name, params in self._world.calls
                if method is None or name.lower() == method.lower()
            ]

    def pending_updates(self) -> list[dict]:
        """Updates queued for the bot and not yet confirmed."""
        with self._world.lock:
            return copy.deepcopy(self._world.updates)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call listener(event) on every bot action; returns a function that unsubscribes.

        event: {"seq", "action": send|edit|delete|chat_action|answer, "chat_id", and
        "message" (a sent() item) for send/edit/delete, "chat_action", or the answer's
        "callback_query_id", "text", "show_alert"}. Runs on the server's thread.
        """
        return self._world.listen(listener)

    # -- faults -----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of method ("*" for any) fail with this error."""
        if error_code == 429:
            retry_after = 1 if retry_after is None else retry_after
            description = description or f"Too Many Requests: retry after {retry_after}"
        description = description or _DEFAULT_DESCRIPTIONS.get(error_code, "Error")
        error = ApiError(error_code, description, retry_after)
        with self._world.lock:
            self._world.faults.append(Fault(method.lower(), error, times))
