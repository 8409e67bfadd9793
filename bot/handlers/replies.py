"""Small reply helpers shared by the lookup handlers: show-or-edit, command text, buttons."""

from __future__ import annotations

import logging
from datetime import date

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.error import BadRequest

from bot import keyboards, texts
from bot.context import Context, answer_button, reply, settings_of
from bot.keyboards import CB
from bot.updates import WrongUpdate, query_of
from db import clock

log = logging.getLogger(__name__)


def today(context: Context) -> date:
    """Today in the agency's time zone."""
    return clock.today(settings_of(context).tz)


async def show(
    update_or_query: Update | CallbackQuery,
    context: Context,
    text: str,
    markup: InlineKeyboardMarkup | None,
    edit: bool,
) -> None:
    """Edit the pressed button's message when asked and possible; else send a new one."""
    query = (
        update_or_query.callback_query if isinstance(update_or_query, Update) else update_or_query
    )
    if edit and query is not None and query.message is not None:
        try:
            await query.edit_message_text(text, reply_markup=markup)
            return
        except BadRequest as exc:
            if "not modified" in exc.message.lower():
                return
            log.info("could not edit message, sending a new one: %s", exc)
    if isinstance(update_or_query, Update) and update_or_query.effective_chat is not None:
        chat_id = update_or_query.effective_chat.id
    elif query is not None:
        chat_id = query.message.chat.id if query.message else query.from_user.id
    else:
        raise WrongUpdate("an update with neither a chat nor a callback query: nowhere to show")
    await context.bot.send_message(chat_id, text, reply_markup=markup)


async def command_text(update: Update, context: Context, usage: str) -> str | None:
    """The command's arguments as one text; when there are none, say usage and None."""
    text = " ".join(context.args or [])
    if not text:
        await reply(update, usage)
        return None
    return text


async def pressed(update: Update, prefix: CB, count: int = 1) -> list[int] | None:
    """The ids of the pressed button (answered); a forged one is answered so and None."""
    ids = keyboards.parse_ids(query_of(update).data, prefix, count)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return None
    await query_of(update).answer()
    return ids
