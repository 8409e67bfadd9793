"""The parts of an Update a handler was registered for, typed as present.

python-telegram-bot types every part of an Update (its callback query, message, user, chat)
and context.user_data as optional, since which are there depends on the update's kind.
A handler knows its kind from how it was registered: a CallbackQueryHandler's update has
a callback query, a MessageHandler on filters.TEXT's message has text, and every update
of the private chats the bot serves has a user and a chat. These read them so; one that
is missing all the same is a handler wired to the wrong kind of update, a bug, and says so.
"""

from __future__ import annotations

from typing import Any

from telegram import CallbackQuery, Chat, Message, Update, User
from telegram.ext import CallbackContext


class WrongUpdate(RuntimeError):
    """A handler was called with an update that lacks what its registration promises."""


def query_of(update: Update) -> CallbackQuery:
    """The callback query of a CallbackQueryHandler's update."""
    if update.callback_query is None:
        raise WrongUpdate(f"update {update.update_id} has no callback query")
    return update.callback_query


def message_of(update: Update) -> Message:
    """The (new, not edited) message of a MessageHandler's or a command's update."""
    if update.message is None:
        raise WrongUpdate(f"update {update.update_id} has no message")
    return update.message


def text_of(update: Update) -> str:
    """The text of the message of a handler registered on filters.TEXT."""
    text = message_of(update).text
    if text is None:
        raise WrongUpdate(f"update {update.update_id} has no text")
    return text


def user_of(update: Update) -> User:
    """Who sent the update (every update from a private chat has a sender)."""
    if update.effective_user is None:
        raise WrongUpdate(f"update {update.update_id} has no user")
    return update.effective_user


def chat_of(update: Update) -> Chat:
    """The chat of the update (every update from a private chat has one)."""
    if update.effective_chat is None:
        raise WrongUpdate(f"update {update.update_id} has no chat")
    return update.effective_chat


def chat_data(context: CallbackContext[Any, Any, Any, Any]) -> dict[Any, Any]:
    """context.chat_data of a handler's call for an update from a chat."""
    data = context.chat_data
    if data is None:
        raise WrongUpdate("this context has no chat_data (no chat)")
    return data


def user_data(context: CallbackContext[Any, Any, Any, Any]) -> dict[Any, Any]:
    """context.user_data of a handler's call (None only in a job's context without a user)."""
    data = context.user_data
    if data is None:
        raise WrongUpdate("this context has no user_data (a job's, not a handler's)")
    return data
