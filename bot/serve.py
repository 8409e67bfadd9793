"""The bot as part of a bigger asyncio program (`vasooli run`, `vasooli demo`).

running_bot() starts the Application on the caller's loop, long polling or (when
TELEGRAM_WEBHOOK_URL is set) with the webhook registered; webhook_route() is the Starlette
route that feeds webhook updates to it, for the caller to serve beside its other routes.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator

from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from bot.webhook import _webhook_path, check_settings
from db.config import Settings

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1024 * 1024


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings, session_factory: sessionmaker[Session], *, poll_timeout: int = 10
) -> AsyncIterator[Application]:
    """The Application, started on the running loop; stopped and shut down on exit."""
    check_settings(settings)
    app = build_application(settings, session_factory)
    await app.initialize()
    try:
        if app.post_init:  # run_polling() would call it; here we start by hand
            await app.post_init(app)
        await app.start()
        await _receive(app, settings, poll_timeout)
        yield app
    finally:
        await _stop(app)


async def _receive(app: Application, settings: Settings, poll_timeout: int) -> None:
    if settings.telegram_webhook_url:
        assert settings.telegram_webhook_secret is not None  # check_settings() made sure
        await app.bot.set_webhook(
            settings.telegram_webhook_url,
            allowed_updates=Update.ALL_TYPES,
            secret_token=settings.telegram_webhook_secret.get_secret_value(),
        )
        log.info("bot: webhook set")
    else:
        assert app.updater is not None  # build_application gives every Application one
        await app.updater.start_polling(
            poll_interval=0.0, timeout=poll_timeout, allowed_updates=Update.ALL_TYPES
        )
        log.info("bot: long polling")


async def _stop(app: Application) -> None:
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
        if app.post_stop:
            await app.post_stop(app)
    await app.shutdown()  # writes the persistence one last time
    if app.post_shutdown:
        await app.post_shutdown(app)


def webhook_route(app: Application, settings: Settings) -> Route:
    """POST /<the webhook URL's path>: a checked update from Telegram, queued for app."""
    assert settings.telegram_webhook_url and settings.telegram_webhook_secret
    secret = settings.telegram_webhook_secret.get_secret_value().encode()

    async def receive(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, secret):
            return PlainTextResponse("forbidden", status_code=403)
        body = await request.body()
        if len(body) > MAX_UPDATE_BYTES:
            return PlainTextResponse("too large", status_code=413)
        try:
            update = Update.de_json(json.loads(body), app.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            return PlainTextResponse("not an update", status_code=400)
        await app.update_queue.put(update)
        return Response(status_code=200)

    return Route("/" + _webhook_path(settings.telegram_webhook_url), receive, methods=["POST"])
