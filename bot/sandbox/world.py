"""What the sandbox Bot API knows: people, chats, messages, pending updates, settings.

One lock guards it all, because the HTTP server (its own thread and event loop) and the
side door (tests, the demo: other threads or loops) touch it at the same time. Listeners
are called after the lock is released, so a listener may call back into the sandbox.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
Listener = Callable[[dict], None]

# The update types Telegram sends when a bot has not chosen any (allowed_updates empty).
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class ApiError(Exception):
    """A Bot API error, shaped exactly as Telegram sends it."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict:
        body: dict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


def inline_buttons(markup: dict | None) -> list[dict]:
    """The inline keyboard's buttons, row by row, flattened."""
    rows = (markup or {}).get("inline_keyboard") or []
    return [button for row in rows for button in row if isinstance(button, dict)]


@dataclass
class Stored:
    """One message in a chat as it stands now, plus what only the side door sees."""

    chat_id: int
    message: dict  # the Telegram Message object, kept current through edits
    from_bot: bool
    source: str | None = None  # the text as the bot sent it, before HTML parsing
    markup: dict | None = None  # reply_markup as sent (reply keyboards are not echoed)
    deleted: bool = False
    edits: int = 0
    file_path: str | None = None  # where an uploaded photo or document was saved

    def snapshot(self) -> dict:
        msg = self.message
        kind = next((k for k in ("photo", "document") if k in msg), "text")
        return {
            "message_id": msg["message_id"],
            "chat_id": self.chat_id,
            "date": msg["date"],
            "kind": kind,
            "text": msg.get("text", msg.get("caption", "")),
            "source": self.source,
            "entities": copy.deepcopy(msg.get("entities", msg.get("caption_entities", []))),
            "reply_markup": copy.deepcopy(self.markup),
            "buttons": copy.deepcopy(inline_buttons(msg.get("reply_markup"))),
            "deleted": self.deleted,
            "edits": self.edits,
            "photo": self.file_path if kind == "photo" else None,
            "document": self.file_path if kind == "document" else None,
            "message": copy.deepcopy(msg),
        }


@dataclass
class Fault:
    method: str  # lower-case method name, or "*" for any
    error: ApiError
    times: int


@dataclass
class World:
    bot_user: dict
    files_dir: str = ""  # where uploaded photos and documents are saved
    lock: threading.RLock = field(default_factory=threading.RLock)
    users: dict[int, dict] = field(default_factory=dict)
    chats: dict[int, dict] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)  # private chats the user has opened
    blocked: set[int] = field(default_factory=set)
    messages: dict[int, dict[int, Stored]] = field(default_factory=dict)
    updates: list[dict] = field(default_factory=list)
    allowed_updates: list[str] = field(default_factory=list)
    queries: dict[str, dict] = field(default_factory=dict)
    commands: dict[tuple, list[dict]] = field(default_factory=dict)
    webhook: dict = field(default_factory=dict)
    # setChatMenuButton: chat id -> button (None: the bot's default for every chat).
    menu_buttons: dict[int | None, dict] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: deque = field(default_factory=lambda: deque(maxlen=10_000))
    polling: int = 0  # getUpdates requests waiting right now
    seq: int = 0  # one tick per bot action, so waiters can ask for "after this"
    actions: list[tuple[int, int, int]] = field(default_factory=list)  # (seq, chat, message)
    input_marks: dict[int, int] = field(default_factory=dict)  # chat -> seq at last user input
    _changed: threading.Condition = field(init=False)
    _next_message_id: dict[int, int] = field(default_factory=dict)
    _update_ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    query_numbers: itertools.count = field(default_factory=lambda: itertools.count(1))
    _listeners: list[Listener] = field(default_factory=list)
    _update_hooks: list[Callable[[], None]] = field(default_factory=list)
    _events: list[dict] = field(default_factory=list)
    _dispatching: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self.lock)

    # -- chats and messages ---------------------------------------------------------------

    def writable_chat(self, chat_id: int) -> dict:
        """The chat the bot may write to, or the error Telegram gives."""
        with self.lock:
            chat = self.chats.get(chat_id)
            if chat is None or (chat["type"] == "private" and chat_id not in self.started):
                raise bad_request("chat not found")
            if chat_id in self.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            return chat

    def find(self, chat_id: int, message_id: int) -> Stored | None:
        with self.lock:
            return self.messages.get(chat_id, {}).get(message_id)

    def new_message(self, chat_id: int, sender: dict, fields: dict, **extra) -> Stored:
        """Store a message with the next id in its chat; extra fills the Stored record."""
        with self.lock:
            message_id = self._next_message_id.get(chat_id, 0) + 1
            self._next_message_id[chat_id] = message_id
            message = {
                "message_id": message_id,
                "from": copy.deepcopy(sender),
                "chat": copy.deepcopy(self.chats[chat_id]),
                "date": int(time.time()),
            }
            stored = Stored(chat_id, message | fields, from_bot=sender["is_bot"], **extra)
            self.messages.setdefault(chat_id, {})[message_id] = stored
            if stored.from_bot:
                self.note("send", stored)
        self.flush()
        return stored

    def change(
        self, chat_id: int, message_id: int, edit: Callable[[Stored], str], missing: str
    ) -> dict:
        """Apply edit to a live message under the lock; edit returns the action's name."""
        with self.lock:
            stored = self.find(chat_id, message_id)
            if stored is None or stored.deleted:
                raise bad_request(missing)
            self.note(edit(stored), stored)
            result = copy.deepcopy(stored.message)
        self.flush()
        return result

    def bot_messages(self, chat_id: int) -> list[Stored]:
        with self.lock:
            return [s for s in self.messages.get(chat_id, {}).values() if s.from_bot]

    # -- updates ----------------------------------------------------------------------------

    def enqueue(self, kind: str, payload: dict) -> dict | None:
        """Queue an update unless the bot's allowed_updates leave it out (Telegram drops it)."""
        with self.lock:
            allowed = self.allowed_updates
            if (allowed and kind not in allowed) or (not allowed and kind in _OPT_IN_UPDATES):
                log.debug("update %s dropped: not in allowed_updates %s", kind, allowed)
                return None
            update = {"update_id": next(self._update_ids), kind: copy.deepcopy(payload)}
            self.updates.append(update)
        self.poke()
        return update

    def take_updates(self, offset: int | None, limit: int) -> list[dict]:
        """Forget what offset confirms, then return up to limit pending updates."""
        with self.lock:
            if offset is not None and offset < 0:
                del self.updates[: max(0, len(self.updates) + offset)]
            elif offset:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            return copy.deepcopy(self.updates[:limit])

    def confirm(self, update_id: int) -> None:
        with self.lock:
            self.updates = [u for u in self.updates if u["update_id"] != update_id]

    def add_update_hook(self, hook: Callable[[], None]) -> None:
        with self.lock:
            self._update_hooks.append(hook)

    def remove_update_hook(self, hook: Callable[[], None]) -> None:
        with self.lock:
            self._update_hooks.remove(hook)

    def poke(self) -> None:
        """Wake whoever waits for updates or for a webhook change (hooks must not block)."""
        with self.lock:
            hooks = list(self._update_hooks)
        for hook in hooks:
            hook()

    # -- bot actions, listeners and waiting -------------------------------------------------

    def note(self, action: str, stored: Stored | None = None, **details) -> None:
        """Record a bot action (call with the lock held); listeners hear it on flush()."""
        self.seq += 1
        event = {"seq": self.seq, "action": action, **details}
        if stored is not None:
            self.actions.append((self.seq, stored.chat_id, stored.message["message_id"]))
            event |= {"chat_id": stored.chat_id, "message": stored.snapshot()}
        self._events.append(event)
        self._changed.notify_all()

    def flush(self) -> None:
        """Tell listeners about recorded actions, in order, outside the state lock."""
        with self._dispatching:
            while True:
                with self.lock:
                    if not self._events:
                        return
                    event, listeners = self._events.pop(0), list(self._listeners)
                for listener in listeners:
                    try:
                        listener(event)
                    except Exception:  # a broken listener must not break the Bot API
                        log.exception("sandbox listener %r failed", listener)

    def listen(self, listener: Listener) -> Callable[[], None]:
        with self.lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self.lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def count_poll(self, delta: int) -> None:
        with self.lock:
            self.polling += delta
            self._changed.notify_all()

    def mark_input(self, chat_id: int) -> None:
        with self.lock:
            self.input_marks[chat_id] = self.seq

    def find_action(
        self, chat_id: int, predicate: Callable[[dict], bool] | None, after: int
    ) -> dict | None:
        """The first bot message sent or changed in chat after seq `after` that matches."""
        with self.lock:
            seen: set[int] = set()
            for seq, chat, message_id in self.actions:
                if seq <= after or chat != chat_id or message_id in seen:
                    continue
                seen.add(message_id)
                snapshot = self.messages[chat][message_id].snapshot()
                if predicate is None or predicate(snapshot):
                    return snapshot
            return None

    def wait_until(self, probe: Callable[[], T | None], timeout: float) -> T | None:
        """Block until probe() returns something (re-checked on every bot action)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (found := probe()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return found

    def describe(self, chat_id: int, limit: int = 5) -> str:
        """What the bot last did in a chat: for timeout messages that explain themselves."""
        with self.lock:
            recent = self.bot_messages(chat_id)[-limit:]
            lines = [_describe(s) for s in recent]
        return "\n".join(lines) or "  (the bot has sent nothing in this chat)"


def _describe(stored: Stored) -> str:
    snap = stored.snapshot()
    gone = " (deleted)" if stored.deleted else ""
    labels = [button.get("text") for button in snap["buttons"]]
    return f"  #{snap['message_id']}{gone}: {snap['text']!r} buttons={labels}"
