"""A staff member's password typed outside the password step is deleted, with a warning.

People send their password to the wrong prompt (after /cancel, into a search, to the
"I'm not sure what you mean" fallback). Left in the chat it sits in the phone's history,
and a search step would even echo it back. This guard runs before the conversations: a
single-line message of a password's length, from someone not in a password step, is
checked against their password hash; a match is deleted and nothing else runs on it.
A hash check is costly, so each user gets a few per minute (the rest are not checked).
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ApplicationHandlerStop

from bot import texts
from bot.context import Context, db, reply
from bot.conversations import delete_quietly
from bot.conversations.guard import open_conversations
from bot.handlers.common import SlidingWindow
from bot.updates import text_of, user_of
from db.security import MAX_PASSWORD, MIN_PASSWORD
from db.services.staff import sessions

log = logging.getLogger(__name__)

CHECKS = "password_guard.checks"
CHECKS_PER_MINUTE = 5
# Where a password is the expected answer (and those steps delete it themselves).
PASSWORD_CONVERSATIONS = frozenset({"login", "register"})


def _worth_checking(update: Update) -> bool:
    message, chat = update.message, update.effective_chat
    if message is None or chat is None or chat.type != ChatType.PRIVATE:
        return False
    text = message.text or ""
    return (
        MIN_PASSWORD <= len(text) <= MAX_PASSWORD and "\n" not in text and not text.startswith("/")
    )


async def password_outside_step(update: Update, context: Context) -> None:
    """Delete the message and warn when it is the sender's own password."""
    if not isinstance(update, Update) or not _worth_checking(update):
        return
    if PASSWORD_CONVERSATIONS & set(open_conversations(context.application, update)):
        return
    user = user_of(update)
    checks = context.bot_data.get(CHECKS)
    if checks is None:
        checks = context.bot_data[CHECKS] = SlidingWindow(CHECKS_PER_MINUTE)
    if checks.hit(user.id) > checks.limit:
        return
    own = await db(
        context, sessions.is_own_password, telegram_user_id=user.id, text=text_of(update)
    )
    if not own:
        return
    log.info("user %s sent their password outside the password step: deleted", user.id)
    await delete_quietly(update.message)
    await reply(update, texts.PASSWORD_OUTSIDE_STEP)
    raise ApplicationHandlerStop
