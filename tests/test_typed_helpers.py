"""The helpers that give the type checker what a runtime check already knows.

bot.updates reads the parts of an Update a handler was registered for; rows_matched reads
an UPDATE's rowcount; required_secret reads a secret setting a command needs. Each one
must answer with the value when it is there and refuse loudly when it is not.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from telegram import CallbackQuery, Chat, Message, Update, User
from telegram.ext import CallbackContext

from bot import updates
from db.config import SettingsError, required_secret
from db.models import Staff
from db.session import rows_matched

USER = User(id=7, first_name="Asha", is_bot=False)
CHAT = Chat(id=7, type=Chat.PRIVATE)


def _message(text: str | None) -> Message:
    return Message(
        message_id=1, date=datetime(2026, 1, 1, tzinfo=UTC), chat=CHAT, from_user=USER, text=text
    )


def test_a_text_update_gives_its_parts() -> None:
    upd = Update(update_id=1, message=_message("hello"))
    assert updates.text_of(upd) == "hello"
    assert updates.message_of(upd).message_id == 1
    assert updates.user_of(upd).id == 7
    assert updates.chat_of(upd).id == 7


def test_a_button_update_gives_its_query() -> None:
    query = CallbackQuery(id="q1", from_user=USER, chat_instance="c", data="x:1")
    upd = Update(update_id=2, callback_query=query)
    assert updates.query_of(upd).data == "x:1"
    with pytest.raises(updates.WrongUpdate, match="no message"):
        updates.message_of(upd)


def test_missing_parts_are_refused() -> None:
    bare = Update(update_id=3)
    for read in (updates.query_of, updates.message_of, updates.user_of, updates.chat_of):
        with pytest.raises(updates.WrongUpdate, match="update 3"):
            read(bare)
    with pytest.raises(updates.WrongUpdate, match="no text"):
        updates.text_of(Update(update_id=4, message=_message(None)))


def test_user_data_of_a_context_without_a_user_is_refused() -> None:
    class _App:  # what CallbackContext reads of its application
        user_data: dict[int, dict[str, object]] = {7: {"k": 1}}
        chat_data: dict[int, dict[str, object]] = {}
        bot_data: dict[str, object] = {}

    with_user = CallbackContext(_App(), chat_id=7, user_id=7)
    assert updates.user_data(with_user) == {"k": 1}
    with pytest.raises(updates.WrongUpdate, match="user_data"):
        updates.user_data(CallbackContext(_App()))
    with pytest.raises(updates.WrongUpdate, match="chat_data"):
        updates.chat_data(CallbackContext(_App()))


def test_rows_matched_counts_an_update(session: Session, agent) -> None:
    result = session.execute(update(Staff).where(Staff.id == agent.id).values(name="Renamed"))
    assert rows_matched(result) == 1
    missing = session.execute(update(Staff).where(Staff.id == -1).values(name="Nobody"))
    assert rows_matched(missing) == 0


def test_rows_matched_refuses_a_select(session: Session) -> None:
    result = session.execute(select(Staff.id))  # an ORM SELECT: a plain Result
    with pytest.raises(TypeError, match="rowcount"):
        rows_matched(result)


def test_required_secret() -> None:
    assert required_secret(SecretStr("s3cret"), "twilio_auth_token") == "s3cret"
    for missing in (None, SecretStr("")):
        with pytest.raises(SettingsError, match="TWILIO_AUTH_TOKEN is required"):
            required_secret(missing, "twilio_auth_token")
