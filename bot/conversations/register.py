"""Getting in: /start with an invite code, /start without one (access request), first password.

Between the /start and the password message user_data keeps the invite code's hash, never
the code (user_data is stored in the database), and the /start message with the code is
deleted once read; the hash is cleared when the conversation ends.
"""

from __future__ import annotations

import logging
from enum import IntEnum

from telegram import Bot, Update
from telegram.error import TelegramError
from telegram.ext import CommandHandler, ConversationHandler, MessageHandler

from bot import keyboards, texts
from bot.context import Context, dashboards_url, db, reply, set_menu_for, staff_actor
from bot.conversations import TEXT_INPUT, cancel_fallback, delete_quietly
from bot.updates import chat_of, message_of, user_data, user_of
from db.models import StaffState
from db.security import hash_code
from db.services.errors import InvalidInput, ServiceError
from db.services.staff import members as staff_service
from db.services.staff.members import StaffInfo

log = logging.getLogger(__name__)

INVITE_HASH = "register.invite_hash"
# Before the hash was kept, the code itself: still read so a half-done sign-up survives.
INVITE_CODE = "register.invite_code"


class State(IntEnum):
    INVITE_PASSWORD = 1
    FIRST_PASSWORD = 2


def build_handler() -> ConversationHandler:
    """The register conversation (persistent: a restart half-way through resumes it)."""
    return ConversationHandler(
        entry_points=[CommandHandler("start", start), CommandHandler("request", request)],
        states={
            State.INVITE_PASSWORD: [MessageHandler(TEXT_INPUT, invite_password)],
            State.FIRST_PASSWORD: [MessageHandler(TEXT_INPUT, first_password)],
        },
        fallbacks=[cancel_fallback()],
        name="register",
        persistent=True,
        allow_reentry=True,
    )


async def start(update: Update, context: Context) -> int:
    """/start: with a code (t.me deep link) redeem an invite, without one find out who this is."""
    user_data(context).clear()
    if context.args:
        code = context.args[0]
        await delete_quietly(update.message)  # the code is single-use: not left in the chat
        return await _start_with_code(update, context, code)
    info = await db(context, staff_service.get_staff, telegram_user_id=user_of(update).id)
    if info is None:
        return await _ask_access(update, context)
    if info.state == StaffState.ACTIVE and not info.has_password:
        await reply(update, texts.NEW_PASSWORD_ASK)
        return State.FIRST_PASSWORD
    if info.state == StaffState.ACTIVE:
        actor = await staff_actor(update, context)  # answers "please /login" itself
        if actor is not None:
            await reply(update, texts.welcome_back(actor.name))
        return ConversationHandler.END
    await reply(update, _state_text(info.state))
    return ConversationHandler.END


def _state_text(state: StaffState) -> str:
    return {
        StaffState.PENDING: texts.PENDING,
        StaffState.DISABLED: texts.DISABLED,
    }.get(state, texts.REJECTED_OR_BLOCKED)


async def _start_with_code(update: Update, context: Context, code: str) -> int:
    info = await db(context, staff_service.get_staff, telegram_user_id=user_of(update).id)
    if info is not None and info.state == StaffState.ACTIVE:
        await reply(update, texts.ALREADY_STAFF)
        return ConversationHandler.END
    try:
        role = await db(context, staff_service.check_invite, code=code)
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return ConversationHandler.END
    user_data(context)[INVITE_HASH] = hash_code(code)
    await reply(update, texts.invite_ask_password(role))
    return State.INVITE_PASSWORD


async def request(update: Update, context: Context) -> int:
    """/request: ask for access (someone known gets told where they stand instead)."""
    user_data(context).clear()
    info = await db(context, staff_service.get_staff, telegram_user_id=user_of(update).id)
    if info is None:
        return await _ask_access(update, context)
    await reply(
        update, texts.ALREADY_STAFF if info.state == StaffState.ACTIVE else _state_text(info.state)
    )
    return ConversationHandler.END


async def _ask_access(update: Update, context: Context) -> int:
    user, chat = user_of(update), chat_of(update)
    try:
        info = await db(
            context,
            staff_service.request_access,
            telegram_user_id=user.id,
            chat_id=chat.id,
            name=user.full_name,
            username=user.username,
        )
    except ServiceError as err:
        await reply(
            update,
            texts.ALREADY_STAFF if err.code == "already_staff" else texts.REJECTED_OR_BLOCKED,
        )
        return ConversationHandler.END
    admins = await db(context, staff_service.admins)
    told = await notify_admins(context.bot, info, admins)
    await reply(update, texts.REQUEST_SENT if told else texts.NO_ADMINS)
    return ConversationHandler.END


async def notify_admins(bot: Bot, info: StaffInfo, admins: list[StaffInfo]) -> int:
    """Send the request with Approve/Reject to every admin; return how many got it."""
    told = 0
    for admin in admins:
        if admin.chat_id is None:
            continue
        try:
            await bot.send_message(
                admin.chat_id,
                texts.access_request_for_admin(info.name, info.username, info.telegram_user_id),
                reply_markup=keyboards.access_decision(info.id),
            )
            told += 1
        except TelegramError as exc:
            log.warning("could not tell admin %s about request %s: %s", admin.id, info.id, exc)
    return told


async def invite_password(update: Update, context: Context) -> int:
    """The password after an invite: delete the message, then redeem the invite with it."""
    message = message_of(update)
    password = message.text or ""
    await delete_quietly(message)
    old_code = user_data(context).get(INVITE_CODE)
    code_hash = user_data(context).get(INVITE_HASH) or (hash_code(old_code) if old_code else None)
    if not code_hash:
        await reply(update, texts.TOO_LATE)
        return ConversationHandler.END
    user = user_of(update)
    try:
        result = await db(
            context,
            staff_service.redeem_invite,
            code_hash=code_hash,
            telegram_user_id=user.id,
            chat_id=chat_of(update).id,
            name=user.full_name,
            username=user.username,
            password=password,
        )
    except InvalidInput as err:
        await reply(update, texts.password_again(err.message))
        return State.INVITE_PASSWORD
    except ServiceError as err:
        user_data(context).clear()
        await reply(update, texts.service_error(err))
        return ConversationHandler.END
    user_data(context).clear()
    await set_menu_for(context.bot, result.staff, app_url=dashboards_url(context))
    await reply(update, texts.welcome(result.staff.name, result.staff.role))
    return ConversationHandler.END


async def save_first_password(update: Update, context: Context) -> bool:
    """Delete the password message and set it as approved staff's first password.

    True when done (logged in, or refused for good); False to ask for another password.
    Shared with /login, which asks approved staff without a password the same way.
    """
    message = message_of(update)
    password = message.text or ""
    await delete_quietly(message)
    try:
        result = await db(
            context,
            staff_service.set_password,
            telegram_user_id=user_of(update).id,
            password=password,
        )
    except InvalidInput as err:
        await reply(update, texts.password_again(err.message))
        return False
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return True
    await set_menu_for(context.bot, result.staff, app_url=dashboards_url(context))
    await reply(update, texts.welcome(result.staff.name, result.staff.role))
    return True


async def first_password(update: Update, context: Context) -> int:
    """The first password of approved staff (asked on /start)."""
    if await save_first_password(update, context):
        user_data(context).clear()
        return ConversationHandler.END
    return State.FIRST_PASSWORD
