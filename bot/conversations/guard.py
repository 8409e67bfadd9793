"""One conversation at a time: starting a new one ends whatever else the user had open.

Without this, a user who presses Pay while /new waits for an amount has two conversations
open, and the one registered first takes the next typed answer: the wrong form fills in.
python-telegram-bot has no public call to end a conversation from outside, so this uses
ConversationHandler's own _get_key/_update_state (what it calls itself on END), which also
keeps the persistence in step.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, ConversationHandler

from bot.context import Context
from bot.updates import user_of

log = logging.getLogger(__name__)


def _conversations(app: Application) -> list[ConversationHandler]:
    return [
        handler
        for handlers in app.handlers.values()
        for handler in handlers
        if isinstance(handler, ConversationHandler)
    ]


def _starts(conv: ConversationHandler, update: Update) -> bool:
    """Whether update is one of conv's entry points."""
    return any(ep.check_update(update) not in (None, False) for ep in conv.entry_points)


def open_conversations(app: Application, update: Update) -> list[str]:
    """The names of the conversations the user of update has open."""
    return [conv.name or "" for conv in _conversations(app) if _open_key(conv, update)]


def _open_key(conv: ConversationHandler, update: Update) -> tuple | None:
    """The conversation key of this user's open conversation in conv, if any."""
    if update.effective_chat is None or update.effective_user is None:
        return None
    key = conv._get_key(update)
    return key if key in conv._conversations else None


async def end_other_conversations(update: Update, context: Context) -> None:
    """An entry point of one conversation ends the user's other open conversations."""
    if not isinstance(update, Update):
        return
    convs = _conversations(context.application)
    starting = [conv for conv in convs if _starts(conv, update)]
    if not starting:
        return
    for conv in convs:
        if conv in starting:
            continue
        key = _open_key(conv, update)
        if key is not None:
            log.info(
                "conversation %s ended: user %s started %s",
                conv.name,
                user_of(update).id,
                starting[0].name,
            )
            conv._update_state(ConversationHandler.END, key)
