"""What every handler needs: settings, the database off the event loop, and the auth gate.

    @require_staff
    async def mine(update: Update, context: Context, actor: Actor) -> int:
        loans = await db(context, loans_service.list_mine, actor=actor)
        await reply(update, texts.loans(loans))
        return ConversationHandler.END

db() runs a service in a worker thread inside one transaction: commit on success,
rollback on error, except an AuthError carrying params["commit"] (a failed login's
counter and audit rows), which is committed and re-raised (db.services.staff.sessions).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    MenuButton,
    MenuButtonCommands,
    MenuButtonWebApp,
    Update,
    WebAppInfo,
)
from telegram.error import TelegramError
from telegram.ext import ContextTypes, ConversationHandler

from bot import texts
from db import agency
from db.config import Settings
from db.models import Role, StaffState
from db.services.access import Actor
from db.services.errors import AuthError
from db.services.staff import members as staff_service
from db.services.staff.app_login import DASHBOARD_ROLES

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE
T = TypeVar("T")

SETTINGS = "settings"
SESSION_FACTORY = "session_factory"

_GATE_TEXTS = {
    "not_staff": texts.NOT_STAFF,
    "rejected": texts.NOT_STAFF,
    "pending": texts.PENDING,
    "disabled": texts.DISABLED,
    "no_password": texts.NO_PASSWORD,
    "no_session": texts.PLEASE_LOGIN,
    "session_expired": texts.SESSION_EXPIRED,
}


def settings_of(context: Context) -> Settings:
    """The Settings the Application was built with."""
    return context.bot_data[SETTINGS]


def agency_of(context: Context) -> agency.Agency:
    """The agency the settings describe (built on each call: settings may be swapped)."""
    return agency.agency_of(settings_of(context))


def _run(factory: sessionmaker[Session], fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    with factory() as session:
        try:
            result = fn(session, **kwargs)
        except AuthError as err:
            # The refusal's own rows (failed-login counter, lock, audit) must survive it.
            if err.params.get("commit"):
                session.commit()
            else:
                session.rollback()
            raise
        except BaseException:
            session.rollback()
            raise
        session.commit()
        return result


async def db(context: Context, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """fn(session, **kwargs) in a worker thread, in one transaction (see module docstring)."""
    factory = context.bot_data[SESSION_FACTORY]
    return await asyncio.to_thread(_run, factory, fn, kwargs)


async def reply(update: Update, text: str, **kwargs: Any) -> None:
    """Answer in the chat of update (HTML); a button press also gets its query answered."""
    if update.callback_query is not None:
        await update.callback_query.answer()
    if update.effective_chat is not None:
        await update.effective_chat.send_message(text, **kwargs)


async def answer_button(update: Update, text: str) -> None:
    """A short notice on a pressed button (plain text, at most 200 characters)."""
    if update.callback_query is not None:
        await update.callback_query.answer(text[:200])


def refusal_text(code: str) -> str:
    """The sentence for an AuthError code or a StaffState value that keeps someone out."""
    return _GATE_TEXTS.get(code, texts.PLEASE_LOGIN)


def gate_text(err: AuthError) -> str:
    """The sentence for a user the gate refused."""
    return refusal_text(err.code)


async def staff_actor(update: Update, context: Context) -> Actor | None:
    """The logged-in Actor behind update; otherwise answer why not and return None."""
    settings = settings_of(context)
    user = update.effective_user
    if user is None:
        return None
    try:
        return await db(
            context,
            staff_service.current_actor,
            telegram_user_id=user.id,
            idle_minutes=settings.session_idle_minutes,
            max_hours=settings.session_max_hours,
        )
    except AuthError as err:
        log.info("gate refused user %s: %s", user.id, err.code)
        text = gate_text(err)
        if update.callback_query is not None:
            await answer_button(update, text)
        elif update.effective_chat is not None:
            await update.effective_chat.send_message(text)
        return None


StaffCallback = Callable[[Update, Context, Actor], Awaitable[Any]]


def require_staff(callback: StaffCallback) -> Callable[[Update, Context], Coroutine[Any, Any, Any]]:
    """Run callback(update, context, actor) for logged-in active staff only.

    Anyone else gets one sentence (not staff / waiting / disabled / please /login) and the
    callback does not run; ConversationHandler.END is returned so a conversation whose
    session expired ends instead of resuming after the next login.
    """

    @functools.wraps(callback)
    async def gate(update: Update, context: Context) -> Any:
        actor = await staff_actor(update, context)
        if actor is None:
            return ConversationHandler.END
        return await callback(update, context, actor)

    return gate


# --- command menus -----------------------------------------------------------------------


def menu(role: Role | None) -> list[BotCommand]:
    """The command menu of a role (None: the public menu)."""
    return [BotCommand(c.name, c.description) for c in texts.commands_for(role)]


def dashboards_url(context: Context) -> str | None:
    """The Mini App's address for the menu button, when it can have one.

    Telegram opens Web Apps over https only, so with an http PUBLIC_BASE_URL (or none)
    chats keep the commands button.
    """
    public = settings_of(context).public_base_url
    return f"{public}/app/" if public and public.startswith("https://") else None


async def set_menu_for(
    bot: Bot, staff: staff_service.StaffInfo, *, app_url: str | None = None
) -> None:
    """Show a staff member their role's commands in their chat (public ones unless active),
    and, with app_url, the dashboards' menu button to active managers and admins."""
    if staff.chat_id is None:
        return
    scope = BotCommandScopeChat(staff.chat_id)
    try:
        if staff.state == StaffState.ACTIVE:
            await bot.set_my_commands(menu(staff.role), scope=scope)
        else:
            await bot.delete_my_commands(scope=scope)
    except TelegramError as exc:
        log.warning("could not set the menu of chat %s: %s", staff.chat_id, exc)
    if app_url is not None:
        shows = staff.state == StaffState.ACTIVE and staff.role in DASHBOARD_ROLES
        button = MenuButtonWebApp(texts.DASHBOARDS_BUTTON, WebAppInfo(app_url)) if shows else None
        await _set_button(bot, staff.chat_id, button or MenuButtonCommands())


async def _set_button(bot: Bot, chat_id: int, button: MenuButton) -> None:
    try:
        await bot.set_chat_menu_button(chat_id=chat_id, menu_button=button)
    except TelegramError as exc:
        log.warning("could not set the menu button of chat %s: %s", chat_id, exc)


async def reset_menu(bot: Bot, chat_id: int, *, app_url: str | None = None) -> None:
    """Back to the public menu in one chat (after /logout); the commands button too when
    the dashboards' button may have been set (app_url)."""
    try:
        await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id))
    except TelegramError as exc:
        log.warning("could not reset the menu of chat %s: %s", chat_id, exc)
    if app_url is not None:
        await _set_button(bot, chat_id, MenuButtonCommands())
