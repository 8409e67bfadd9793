"""python -m bot: the Telegram bot; long polling, or a webhook when TELEGRAM_WEBHOOK_URL is set.

main() runs it as its own process (signals handled by PTB); serve(settings) runs it as one
task of an event loop shared with other services (vasooli run) until cancelled, through
bot.serve.running_bot().
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.app import build_application
from bot.serve import running_bot
from bot.webhook import _webhook_path, check_settings
from db import process
from db.config import Settings, load_settings, required_secret
from db.session import make_engine, make_session_factory

log = logging.getLogger(__name__)


def webhook_options(settings: Settings) -> dict[str, Any]:
    """run_webhook/start_webhook arguments: PTB checks the secret header on every update."""
    url = settings.telegram_webhook_url or ""
    return {
        "listen": "0.0.0.0",
        "port": settings.port,
        "url_path": _webhook_path(url),
        "webhook_url": url,
        "secret_token": required_secret(
            settings.telegram_webhook_secret, "telegram_webhook_secret"
        ),
    }


@process.entry_point("vasooli bot")
def main() -> None:
    """Entry point (vasooli bot calls it); a settings problem exits with status 2."""
    settings = load_settings()
    check_settings(settings)
    engine = make_engine(settings.database_url)
    app = build_application(settings, make_session_factory(engine))
    try:
        if settings.telegram_webhook_url:
            log.info("bot: webhook mode on port %s", settings.port)
            app.run_webhook(**webhook_options(settings))
        else:
            log.info("bot: long polling")
            app.run_polling()
    finally:
        engine.dispose()


async def serve(settings: Settings) -> None:
    """Run the bot in the running event loop until cancelled; SettingsError if unusable.

    In webhook mode this registers the webhook only: bot.serve.webhook_route() is the
    route the caller's web server must mount to feed the updates in.
    """
    engine = make_engine(settings.database_url)
    try:
        async with running_bot(settings, make_session_factory(engine)):
            await asyncio.Event().wait()  # until the task is cancelled
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
