"""Conversations: one module per conversation, each with build_handler() -> ConversationHandler.

Every conversation is named, persistent=True (it survives a restart of the bot), keeps its
states in an IntEnum, and ends with /cancel via cancel_fallback(). context.user_data holds
only the running conversation's scratch values (JSON only: see bot.persistence): clear it
when a conversation starts and when it ends; /cancel clears it too.
"""

from __future__ import annotations

import logging

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import CommandHandler, ConversationHandler, filters

from bot import texts
from bot.context import Context, reply
from bot.updates import user_data

log = logging.getLogger(__name__)

# A typed answer inside a conversation: text that is not a command, in a new message.
TEXT_INPUT = filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND


async def delete_quietly(message: Message | None) -> bool:
    """Delete a message (a password) at once; a failure is logged, never raised."""
    if message is None:
        return False
    try:
        return await message.delete()
    except TelegramError as exc:
        log.warning("could not delete message %s: %s", message.message_id, exc)
        return False


async def cancel_conversation(update: Update, context: Context) -> int:
    """/cancel inside a conversation: forget its scratch values and end it."""
    user_data(context).clear()
    await reply(update, texts.CANCELLED)
    return ConversationHandler.END


def cancel_fallback() -> CommandHandler:
    """The /cancel fallback every conversation lists."""
    return CommandHandler("cancel", cancel_conversation)
