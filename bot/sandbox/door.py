"""The side door: people acting in Telegram, as tests and the demo play them.

A person writes or presses a button; the sandbox turns that into the Update Telegram would
queue for the bot. Mistakes in a test (an unknown user, a button that is not there) raise
ValueError at once instead of sending the bot something Telegram never would.
"""

from __future__ import annotations

import copy
import time

from bot.sandbox.html import command_entities
from bot.sandbox.world import Stored, World, inline_buttons


def add_user(
    world: World, user_id: int, first_name: str, username: str | None = None, started: bool = False
) -> dict:
    """Register a person; their private chat's id is their user id."""
    if user_id <= 0:
        raise ValueError("a user id is a positive integer")
    user = {"id": user_id, "is_bot": False, "first_name": first_name}
    if username:
        user["username"] = username
    with world.lock:
        world.users[user_id] = user
        world.chats[user_id] = {"id": user_id, "type": "private"} | {
            k: v for k, v in user.items() if k in ("first_name", "username")
        }
        if started:
            world.started.add(user_id)
    return copy.deepcopy(user)


def add_group(world: World, chat_id: int, title: str) -> dict:
    """A group the bot is in; ids from -100... are supergroups, as in Telegram."""
    if chat_id >= 0:
        raise ValueError("a group chat id is negative")
    kind = "supergroup" if str(chat_id).startswith("-100") else "group"
    chat = {"id": chat_id, "type": kind, "title": title}
    with world.lock:
        world.chats[chat_id] = chat
    return copy.deepcopy(chat)


def _actor(world: World, user_id: int, chat_id: int | None) -> tuple[dict, int]:
    """The user and the chat they act in (their private chat unless chat_id says otherwise)."""
    user = world.users.get(user_id)
    if user is None:
        raise ValueError(f"unknown user {user_id}: call user() first")
    chat_id = user_id if chat_id is None else chat_id
    if chat_id not in world.chats:
        raise ValueError(f"unknown chat {chat_id}: call group() first")
    return user, chat_id


def send_text(
    world: World, user_id: int, text: str, chat_id: int | None = None, reply_to: int | None = None
) -> dict:
    """The person writes text; commands get bot_command entities. Returns the Message."""
    if not text:
        raise ValueError("Telegram does not send empty messages")
    with world.lock:
        user, chat_id = _actor(world, user_id, chat_id)
        fields: dict = {"text": text}
        if entities := command_entities(text):
            fields["entities"] = entities
        if reply_to is not None:
            fields["reply_to_message"] = _replied(world, chat_id, reply_to)
        if chat_id == user_id:
            world.started.add(user_id)  # writing to the bot is what opens a private chat
    # Outside the state lock: new_message flushes to listeners (taking the dispatch lock),
    # and a listener on the server thread may hold that lock while it waits for this one.
    stored = world.new_message(chat_id, user, fields)
    world.mark_input(chat_id)
    message = copy.deepcopy(stored.message)
    world.enqueue("message", message)
    return message


def edit_text(
    world: World, user_id: int, message_id: int, text: str, chat_id: int | None = None
) -> dict:
    """The person edits a message of theirs; the bot gets an edited_message update."""
    if not text:
        raise ValueError("Telegram does not allow an empty message")
    with world.lock:
        _user, chat_id = _actor(world, user_id, chat_id)
        stored = world.find(chat_id, message_id)
        if stored is None or stored.deleted or stored.message["from"]["id"] != user_id:
            raise ValueError(f"user {user_id} has no message {message_id} in chat {chat_id}")
        stored.message["text"] = text
        stored.message["edit_date"] = int(time.time())
        stored.message.pop("entities", None)
        if entities := command_entities(text):
            stored.message["entities"] = entities
        message = copy.deepcopy(stored.message)
    world.mark_input(chat_id)
    world.enqueue("edited_message", message)
    return message


def _replied(world: World, chat_id: int, message_id: int) -> dict:
    stored = world.find(chat_id, message_id)
    if stored is None or stored.deleted:
        raise ValueError(f"no message {message_id} in chat {chat_id} to reply to")
    replied = copy.deepcopy(stored.message)
    replied.pop("reply_to_message", None)
    return replied


def press(
    world: World,
    user_id: int,
    message_id: int,
    callback_data: str,
    chat_id: int | None = None,
    force: bool = False,
) -> str:
    """The person presses a button; returns the callback query id.

    Refuses a button the message does not show, unless force=True (forged callbacks).
    """
    with world.lock:
        user, chat_id = _actor(world, user_id, chat_id)
        stored = world.find(chat_id, message_id)
        if not force:
            _check_button(stored, message_id, callback_data)
        query_id = str(4_000_000_000_000_000 + next(world.query_numbers))
        query = {
            "id": query_id,
            "from": copy.deepcopy(user),
            "chat_instance": str(abs(chat_id) * 7_919 + 13),
            "data": callback_data,
        }
        query["message"] = _query_message(world, chat_id, message_id, stored)
        world.queries[query_id] = {"chat_id": chat_id, "message_id": message_id, "answer": None}
        world.mark_input(chat_id)
    world.enqueue("callback_query", query)
    return query_id


def _check_button(stored: Stored | None, message_id: int, data: str) -> None:
    if stored is None or stored.deleted or not stored.from_bot:
        raise ValueError(f"the bot has no message {message_id} here to press a button on")
    offered = [b.get("callback_data") for b in inline_buttons(stored.message.get("reply_markup"))]
    if data not in offered:
        raise ValueError(
            f"message {message_id} has no button with callback_data {data!r}; it offers {offered}"
        )


def _query_message(world: World, chat_id: int, message_id: int, stored: Stored | None) -> dict:
    if stored is not None and not stored.deleted:
        return copy.deepcopy(stored.message)
    # What Telegram sends for a message the bot can no longer see: date 0.
    return {"chat": copy.deepcopy(world.chats[chat_id]), "message_id": message_id, "date": 0}


def tap(world: World, user_id: int, label: str, chat_id: int | None = None) -> str:
    """Press the button labelled `label` on the newest bot message that shows one."""
    with world.lock:
        _, chat = _actor(world, user_id, chat_id)
        found = _labelled(world, chat, label)
        if found is None:
            raise ValueError(f"no button {label!r} on the bot's messages:\n{world.describe(chat)}")
    return press(world, user_id, found[0], found[1], chat)


def _labelled(world: World, chat: int, label: str) -> tuple[int, str] | None:
    """(message id, callback data) of the newest button labelled label (lock held)."""
    for stored in reversed(world.bot_messages(chat)):
        if stored.deleted:
            continue
        for button in inline_buttons(stored.message.get("reply_markup")):
            if button.get("text") == label and "callback_data" in button:
                return stored.message["message_id"], button["callback_data"]
    return None
