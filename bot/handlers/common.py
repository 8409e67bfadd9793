"""What every chat meets: the guards, /help, /cancel, unknown input, and the error handler."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque

from telegram import Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot import texts
from bot.context import Context, db, reply, settings_of
from bot.updates import chat_data, chat_of, query_of, user_of
from db.models import StaffState
from db.services.errors import ServiceError
from db.services.staff import members as staff_service

log = logging.getLogger(__name__)

TOLD_PRIVATE_ONLY = "common.told_private_only"
RATE_LIMITER = "common.rate_limiter"

# --- guards (negative groups: they run before every other handler) --------------------


async def private_only(update: Update, context: Context) -> None:
    """Outside private chats: say once that the bot works in private only, then nothing."""
    chat = update.effective_chat
    if chat is None or chat.type == ChatType.PRIVATE:
        return
    if update.callback_query is not None:
        await update.callback_query.answer(texts.PRIVATE_ONLY)
    elif chat.type != ChatType.CHANNEL and not chat_data(context).get(TOLD_PRIVATE_ONLY):
        chat_data(context)[TOLD_PRIVATE_ONLY] = True
        try:
            await chat.send_message(texts.PRIVATE_ONLY)
        except TelegramError as exc:
            log.info("could not answer in chat %s: %s", chat.id, exc)
    raise ApplicationHandlerStop


class SlidingWindow:
    """At most limit events per user in any window seconds (kept in memory)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[int, deque[float]] = {}

    def hit(self, user_id: int, now: float | None = None) -> int:
        """Record one event; return how many the user has in the window (this one included)."""
        now = time.monotonic() if now is None else now
        events = self._events.setdefault(user_id, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        events.append(now)
        # Forget idle users so the table holds only the last minute's senders.
        if len(self._events) > 10_000:
            self._events = {k: v for k, v in self._events.items() if v[-1] > now - self.window}
        return len(events)


async def rate_limit(update: Update, context: Context) -> None:
    """Messages, edits and button presses above settings.bot_commands_per_minute: slow down.

    An edited message counts like a new one but is never acted on: an edit of a command
    (or of an answer in a form) would otherwise run it again.
    """
    user = update.effective_user
    edited = update.edited_message
    if user is None or (
        update.message is None and edited is None and update.callback_query is None
    ):
        return
    limiter = context.bot_data.get(RATE_LIMITER)
    if limiter is None:
        limiter = context.bot_data[RATE_LIMITER] = SlidingWindow(
            settings_of(context).bot_commands_per_minute
        )
    count = limiter.hit(user.id)
    if count <= limiter.limit:
        if edited is not None:
            await edited.reply_text(texts.EDIT_NOT_RERUN)
            raise ApplicationHandlerStop
        return
    log.info("user %s rate-limited (%s in a minute)", user.id, count)
    if update.callback_query is not None:
        await update.callback_query.answer(texts.SLOW_DOWN)
    elif count == limiter.limit + 1:
        # Said once per burst: answering every extra message would be a flood of our own.
        await chat_of(update).send_message(texts.SLOW_DOWN)
    raise ApplicationHandlerStop


# --- commands ------------------------------------------------------------------------------


async def help_command(update: Update, context: Context) -> None:
    """/help: what this user's role can do; how to get in for everyone else."""
    info = await db(context, staff_service.get_staff, telegram_user_id=user_of(update).id)
    agency = settings_of(context).agency_name
    if info is not None and info.state == StaffState.ACTIVE:
        await reply(update, texts.help_text(info.role, agency))
    elif info is not None and info.state == StaffState.PENDING:
        await reply(update, texts.PENDING)
    else:
        await reply(update, texts.help_text(None, agency))


async def cancel_command(update: Update, context: Context) -> None:
    """/cancel outside any conversation."""
    await reply(update, texts.NOTHING_TO_CANCEL)


async def unknown_command(update: Update, context: Context) -> None:
    """A command no handler took."""
    await reply(update, texts.UNKNOWN_COMMAND)


async def unknown_text(update: Update, context: Context) -> None:
    """Any other message (text of any length, stickers, photos) no handler took."""
    await reply(update, texts.UNKNOWN_TEXT)


async def old_button(update: Update, context: Context) -> None:
    """A button no handler took: from an old message or forged."""
    await query_of(update).answer(texts.OLD_BUTTON)


# --- errors --------------------------------------------------------------------------------


async def on_error(update: object, context: Context) -> None:
    """Log the failure with its update id; tell the user politely, never a traceback."""
    err = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    if not isinstance(update, Update):
        log.error("error outside an update: %s", err, exc_info=err)
        return
    log.error("update %s failed: %r", update_id, err, exc_info=err)
    chat = update.effective_chat
    if chat is None or chat.type != ChatType.PRIVATE:
        return
    # A service refusal nobody caught still has a sentence meant for the user.
    text = texts.service_error(err) if isinstance(err, ServiceError) else texts.ERROR
    if update.callback_query is not None:
        # The handler may have answered the button before it failed.
        with contextlib.suppress(TelegramError):
            await update.callback_query.answer()
    try:
        await chat.send_message(text)
    except TelegramError as exc:
        log.warning("could not tell chat %s about update %s: %s", chat.id, update_id, exc)
