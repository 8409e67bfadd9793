"""/login (password, lockout, first password after approval) and /logout.

After a login the command that met an expired session is not replayed: the user is told
they are logged in and sends it again.
"""

from __future__ import annotations

import logging
from enum import IntEnum

from telegram import Update
from telegram.ext import CommandHandler, ConversationHandler, MessageHandler

from bot import jobs, texts
from bot.context import (
    Context,
    dashboards_url,
    db,
    gate_text,
    refusal_text,
    reply,
    reset_menu,
    set_menu_for,
    settings_of,
)
from bot.conversations import TEXT_INPUT, cancel_fallback, delete_quietly
from bot.conversations.register import save_first_password
from bot.updates import chat_of, message_of, user_data, user_of
from db.models import StaffState
from db.services.errors import AuthError, ServiceError
from db.services.staff import members as staff_service

log = logging.getLogger(__name__)


class State(IntEnum):
    PASSWORD = 1
    FIRST_PASSWORD = 2


def build_handler() -> ConversationHandler:
    """The login conversation."""
    return ConversationHandler(
        entry_points=[CommandHandler("login", login)],
        states={
            State.PASSWORD: [MessageHandler(TEXT_INPUT, password)],
            State.FIRST_PASSWORD: [MessageHandler(TEXT_INPUT, first_password)],
        },
        fallbacks=[cancel_fallback()],
        name="login",
        persistent=True,
        allow_reentry=True,
    )


async def login(update: Update, context: Context) -> int:
    """/login: ask for the password (approved staff without one choose it now)."""
    user_data(context).clear()
    user_id = user_of(update).id
    info = await db(context, staff_service.get_staff, telegram_user_id=user_id)
    if info is None or info.state != StaffState.ACTIVE:
        await reply(update, refusal_text(info.state.value if info else "not_staff"))
        return ConversationHandler.END
    if not info.has_password:
        await reply(update, texts.NEW_PASSWORD_ASK)
        return State.FIRST_PASSWORD
    settings = settings_of(context)
    try:
        actor = await db(
            context,
            staff_service.current_actor,
            telegram_user_id=user_id,
            idle_minutes=settings.session_idle_minutes,
            max_hours=settings.session_max_hours,
        )
    except AuthError:
        await reply(update, texts.LOGIN_ASK_PASSWORD)
        return State.PASSWORD
    await reply(update, texts.already_logged_in(actor.name))
    return ConversationHandler.END


async def password(update: Update, context: Context) -> int:
    """The password message: delete it, then check it (wrong: ask again; locked: stop)."""
    message = message_of(update)
    text = message.text or ""
    await delete_quietly(message)
    settings = settings_of(context)
    try:
        result = await db(
            context,
            staff_service.login,
            telegram_user_id=user_of(update).id,
            password=text,
            max_failures=settings.login_max_failures,
            lockout_minutes=settings.login_lockout_minutes,
        )
    except AuthError as err:
        return await _refused(update, err)
    user_data(context).clear()
    await set_menu_for(context.bot, result.staff, app_url=dashboards_url(context))
    await reply(update, texts.logged_in(result.staff.name))
    try:
        await jobs.deliver_held(context, result.staff.id)  # replies held while away
    except Exception:  # the login stands; the relay job delivers them on its next run
        log.exception("could not deliver held replies to staff %s", result.staff.id)
    return ConversationHandler.END


async def _refused(update: Update, err: AuthError) -> int:
    if err.code == "wrong_password":
        await reply(update, texts.wrong_password(int(err.params.get("attempts_left", 0))))
        return State.PASSWORD
    if err.code == "locked":
        await reply(update, texts.locked(int(err.params.get("minutes_left", 1))))
    else:
        await reply(update, gate_text(err))
    return ConversationHandler.END


async def first_password(update: Update, context: Context) -> int:
    """The first password of approved staff (asked on /login)."""
    if await save_first_password(update, context):
        user_data(context).clear()
        return ConversationHandler.END
    return State.FIRST_PASSWORD


async def logout(update: Update, context: Context) -> None:
    """/logout: end the session and go back to the public menu."""
    try:
        await db(context, staff_service.logout, telegram_user_id=user_of(update).id)
    except ServiceError:
        await reply(update, texts.NOT_STAFF)
        return
    user_data(context).clear()
    await reset_menu(context.bot, chat_of(update).id, app_url=dashboards_url(context))
    await reply(update, texts.LOGGED_OUT)


def logout_handler() -> CommandHandler:
    """The /logout command (not a conversation)."""
    return CommandHandler("logout", logout)
