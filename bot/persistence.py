"""python-telegram-bot persistence in the database (table bot_state), not a pickle file.

What a handler puts in context.user_data / chat_data (and bot_data when stored) must be
JSON: str, int, float, bool, None, lists and dicts with str keys. Store ids and strings,
never ORM objects, Decimals (str(amount)), dates (isoformat()) or enums (their .value).
A value that is not JSON is refused with a TypeError naming the key, logged by the
Application's error handler, and the previous stored value is kept.

Rows: namespace "user_data"/"chat_data" with the id as key, "bot_data" with key "bot",
and "conv:<name>" with the JSON list of the conversation key (e.g. [chat_id, user_id]).
The Application calls update_* every update_interval seconds and on shutdown; each call
writes through at once in a worker thread, so flush() has nothing left to do.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from telegram.ext import BasePersistence, PersistenceInput

from db.services import bot_state

log = logging.getLogger(__name__)

USER = "user_data"
CHAT = "chat_data"
BOT = "bot_data"
BOT_KEY = "bot"
CONV = "conv:"

ConversationKey = tuple[int | str, ...]
ConversationDict = dict[ConversationKey, object]


def _dumps(data: Any, where: str) -> str:
    try:
        return json.dumps(data, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"bot persistence: {where} is not JSON-serialisable: {exc}") from None


class DbPersistence(BasePersistence[dict[str, Any], dict[str, Any], dict[str, Any]]):
    """Conversations and user/chat/bot data in bot_state rows; callback data is not stored."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        store_bot_data: bool = True,
        update_interval: float = 1.0,
    ) -> None:
        super().__init__(
            store_data=PersistenceInput(bot_data=store_bot_data, callback_data=False),
            update_interval=update_interval,
        )
        self._factory = session_factory
        # The JSON last written per row: PTB hands over every touched user's data on each
        # run, and most of it has not changed.
        self._written: dict[tuple[str, str], str] = {}

    # --- reading (once, at start) ------------------------------------------------------

    def _load(self, namespace: str) -> dict[str, Any]:
        with self._factory() as session:
            rows = bot_state.read_state(session, namespace=namespace)
        for key, data in rows.items():
            self._written[(namespace, key)] = _dumps(data, f"{namespace}/{key}")
        return rows

    async def get_user_data(self) -> dict[int, dict[str, Any]]:
        """Every stored user_data, by user id."""
        rows = await asyncio.to_thread(self._load, USER)
        return {int(key): data for key, data in rows.items()}

    async def get_chat_data(self) -> dict[int, dict[str, Any]]:
        """Every stored chat_data, by chat id."""
        rows = await asyncio.to_thread(self._load, CHAT)
        return {int(key): data for key, data in rows.items()}

    async def get_bot_data(self) -> dict[str, Any]:
        """The stored bot_data (empty when none)."""
        rows = await asyncio.to_thread(self._load, BOT)
        return dict(rows.get(BOT_KEY) or {})

    async def get_callback_data(self) -> None:
        """Arbitrary callback data is not used (plain string callback data instead)."""
        return None

    async def get_conversations(self, name: str) -> ConversationDict:
        """The states of one named conversation, by conversation key."""
        rows = await asyncio.to_thread(self._load, CONV + name)
        return {tuple(json.loads(key)): data["state"] for key, data in rows.items()}

    # --- writing (through, at once) ---------------------------------------------------

    def _put(self, namespace: str, key: str, data: dict[str, Any] | None) -> None:
        text = None if data is None else _dumps(data, f"{namespace}/{key}")
        if self._written.get((namespace, key)) == text:
            return
        with self._factory() as session, session.begin():
            stored = None if text is None else json.loads(text)
            bot_state.write_state(session, namespace=namespace, key=key, data=stored)
        if text is None:
            self._written.pop((namespace, key), None)
        else:
            self._written[(namespace, key)] = text

    async def update_conversation(
        self, name: str, key: ConversationKey, new_state: object | None
    ) -> None:
        """Store (or, when the conversation ended, delete) one conversation's state."""
        data = None if new_state is None else {"state": new_state}
        await asyncio.to_thread(self._put, CONV + name, json.dumps(list(key)), data)

    async def update_user_data(self, user_id: int, data: dict[str, Any]) -> None:
        """Store one user's data; an empty dict deletes the row."""
        await asyncio.to_thread(self._put, USER, str(user_id), data or None)

    async def update_chat_data(self, chat_id: int, data: dict[str, Any]) -> None:
        """Store one chat's data; an empty dict deletes the row."""
        await asyncio.to_thread(self._put, CHAT, str(chat_id), data or None)

    async def update_bot_data(self, data: dict[str, Any]) -> None:
        """Store bot_data."""
        await asyncio.to_thread(self._put, BOT, BOT_KEY, data or None)

    async def update_callback_data(self, data: object) -> None:
        """Not stored (see get_callback_data)."""

    async def drop_user_data(self, user_id: int) -> None:
        """Forget one user's data."""
        await asyncio.to_thread(self._put, USER, str(user_id), None)

    async def drop_chat_data(self, chat_id: int) -> None:
        """Forget one chat's data."""
        await asyncio.to_thread(self._put, CHAT, str(chat_id), None)

    async def refresh_user_data(self, user_id: int, user_data: dict[str, Any]) -> None:
        """Nothing to do: this process is the only writer."""

    async def refresh_chat_data(self, chat_id: int, chat_data: dict[str, Any]) -> None:
        """Nothing to do: this process is the only writer."""

    async def refresh_bot_data(self, bot_data: dict[str, Any]) -> None:
        """Nothing to do: this process is the only writer."""

    async def flush(self) -> None:
        """Nothing to do: every update was written when it was handed over."""
