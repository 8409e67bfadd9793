"""The Application: builder, defaults, persistence, and every handler in one ordered list.

To add a conversation or command: add it to handler_list() below, in the section that
says so. Order matters: within a group the first handler that accepts an update wins, and
the fallbacks at the end take whatever nobody else did.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from telegram import BotCommandScopeDefault, Update
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseHandler,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    Defaults,
    DictPersistence,
    MessageHandler,
    PersistenceInput,
    TypeHandler,
    filters,
)

from bot import jobs
from bot.context import SESSION_FACTORY, SETTINGS, menu, set_menu_for
from bot.conversations import (
    add_loan,
    broadcast,
    close_loan,
    contact,
    edit_loan,
    guard,
    holds,
    login,
    payment,
    promise,
    register,
    reject_approval,
)
from bot.handlers import (
    admin,
    api_keys,
    approvals,
    assign,
    common,
    exports,
    lists,
    loans,
    password_guard,
    sms,
    statements,
    stats,
    suppress,
)
from bot.persistence import DbPersistence
from db import redact
from db.config import Settings, require, required_secret

__all__ = ["build_application", "handler_list", "register_handlers", "set_menu_for"]

log = logging.getLogger(__name__)

# Guards run first, each in its own group (only one handler per group runs).
GROUP_PRIVATE_ONLY = -4
GROUP_RATE_LIMIT = -3
# A password typed outside the password step is deleted before anything reads it.
GROUP_PASSWORD_GUARD = -2
# A new conversation's entry point ends the user's other open ones (one form at a time).
GROUP_ONE_CONVERSATION = -1
# How many updates run at once; one user's updates still run one after another.
MAX_CONCURRENT_UPDATES = 32


def handler_list() -> list[tuple[int, BaseHandler]]:
    """Every handler with its group, in the order they are tried."""
    return [
        # --- guards: group chats are refused, then fast senders slowed down -------------
        (GROUP_PRIVATE_ONLY, TypeHandler(Update, common.private_only)),
        (GROUP_RATE_LIMIT, TypeHandler(Update, common.rate_limit)),
        (GROUP_PASSWORD_GUARD, TypeHandler(Update, password_guard.password_outside_step)),
        (GROUP_ONE_CONVERSATION, TypeHandler(Update, guard.end_other_conversations)),
        # --- conversations (add yours here: (0, your_module.build_handler())) -----------
        (0, register.build_handler()),
        (0, login.build_handler()),
        (0, add_loan.build_handler()),
        (0, lists.find_handler()),
        (0, payment.build_handler()),
        (0, promise.build_handler()),
        (0, contact.build_handler()),
        (0, edit_loan.build_handler()),
        (0, close_loan.build_handler()),
        (0, holds.build_handler()),
        (0, broadcast.build_handler()),
        (0, reject_approval.build_handler()),
        # --- simple commands and buttons (add yours here) -------------------------------
        (0, CommandHandler("help", common.help_command)),
        (0, CommandHandler("cancel", common.cancel_command)),
        (0, login.logout_handler()),
        *((0, handler) for handler in admin.handlers()),
        *((0, handler) for handler in approvals.handlers()),
        *((0, handler) for handler in api_keys.handlers()),
        *((0, handler) for handler in loans.handlers()),
        *((0, handler) for handler in lists.handlers()),
        *((0, handler) for handler in assign.handlers()),
        (0, stats.handler()),
        *((0, handler) for handler in exports.handlers()),
        *((0, handler) for handler in statements.handlers()),
        *((0, handler) for handler in sms.handlers()),
        *((0, handler) for handler in suppress.handlers()),
        # --- fallbacks: keep these last ------------------------------------------------
        (0, MessageHandler(filters.UpdateType.MESSAGE & filters.COMMAND, common.unknown_command)),
        (0, MessageHandler(filters.UpdateType.MESSAGE, common.unknown_text)),
        (0, CallbackQueryHandler(common.old_button)),
    ]


def register_handlers(app: Application) -> None:
    """Add handler_list() and the error handler to app."""
    for group, handler in handler_list():
        app.add_handler(handler, group=group)
    app.add_error_handler(common.on_error)


class PerUserUpdateProcessor(BaseUpdateProcessor):
    """Updates of different users run concurrently; one user's run one at a time, in order.

    Conversations (and the per-user rate limit) see one user's messages in the order sent,
    while one user's slow password check does not hold up everybody else.
    """

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: Counter[int] = Counter()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Await coroutine holding the lock of the update's user (or chat)."""
        key = _update_key(update)
        if key is None:
            await coroutine
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] += 1
        try:
            async with lock:
                await coroutine
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to free."""


def _update_key(update: object) -> int | None:
    if not isinstance(update, Update):
        return None
    if update.effective_user is not None:
        return update.effective_user.id
    return update.effective_chat.id if update.effective_chat is not None else None


def file_url(base_url: str) -> str:
    """The Bot API file root for an API root: ".../bot" -> ".../file/bot"."""
    return base_url.removesuffix("/").removesuffix("/bot") + "/file/bot"


async def _post_init(app: Application) -> None:
    # Everyone sees the public commands until they log in (set_menu_for then takes over).
    await app.bot.set_my_commands(menu(None), scope=BotCommandScopeDefault())
    log.info("bot @%s ready", app.bot.username)


def build_application(
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    persistence: bool = True,
    rate_limiter: bool = True,
) -> Application:
    """The bot's Application with every handler registered (not yet started).

    persistence=False keeps conversations and user data in memory only (lost on restart).
    rate_limiter=False sends without AIORateLimiter, which holds the bot to Telegram's
    ~30 messages/s: only for benchmarks measuring the bot's own capacity on a sandbox.
    """
    require(settings, "telegram_bot_token")
    # Also for settings not made by load_settings (copies, tests): the token in no log line.
    redact.protect(database_url=settings.database_url, secrets=settings.secret_values())
    store = (
        DbPersistence(session_factory, store_bot_data=False)
        # bot_data holds the settings and the session factory: not data, never stored.
        if persistence
        else DictPersistence(store_data=PersistenceInput(bot_data=False, callback_data=False))
    )
    base_url = settings.telegram_api_base_url
    # Any: rate_limiter() below changes the builder's bot type (ExtBot[None] to ExtBot[dict]).
    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] = (
        ApplicationBuilder()
        .token(required_secret(settings.telegram_bot_token, "telegram_bot_token"))
        .base_url(base_url)
        .base_file_url(file_url(base_url))
        .defaults(Defaults(parse_mode=ParseMode.HTML, tzinfo=settings.tz))
        .concurrent_updates(PerUserUpdateProcessor(MAX_CONCURRENT_UPDATES))
        .persistence(store)
        .post_init(_post_init)
    )
    if rate_limiter:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=2))
    app = builder.build()
    app.bot_data[SETTINGS] = settings
    app.bot_data[SESSION_FACTORY] = session_factory
    register_handlers(app)
    jobs.schedule(app)  # SMS relay and broadcast progress (bot/jobs.py)
    return app
