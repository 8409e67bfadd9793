"""python -m bot: the Telegram bot; long polling, or a webhook when TELEGRAM_WEBHOOK_URL is set.

main() runs it as its own process (signals handled by PTB); serve(settings) runs it as one
task of an event loop shared with other services (vasooli run) until cancelled, through
bot.serve.running_bot().
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from typing import Any
from urllib.parse import urlsplit

from bot.app import build_application
from db.config import Settings, SettingsError, load_settings, require
from db.session import make_engine, make_session_factory

log = logging.getLogger(__name__)

OFFICIAL_API = "https://api.telegram.org/"
# What Telegram accepts as a webhook secret_token.
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def check_settings(settings: Settings) -> None:
    """Raise SettingsError (one line) if a setting the bot needs is missing or unusable."""
    require(settings, "telegram_bot_token")
    url = settings.telegram_webhook_url
    if url is not None:
        require(settings, "telegram_webhook_secret")
        # Telegram itself posts only to https; a self-hosted Bot API server may use http.
        official = settings.telegram_api_base_url.startswith(OFFICIAL_API)
        if not url.startswith("https://") and (official or not url.startswith("http://")):
            raise SettingsError("setting TELEGRAM_WEBHOOK_URL is invalid: must start with https://")
        if not _SECRET.match(settings.telegram_webhook_secret.get_secret_value()):
            raise SettingsError(
                "setting TELEGRAM_WEBHOOK_SECRET is invalid: use 1-256 of A-Z a-z 0-9 _ -"
            )


def _webhook_path(url: str) -> str:
    """The path PTB listens on: the webhook URL's own path (Telegram posts there)."""
    return urlsplit(url).path.strip("/") or "telegram"


def webhook_options(settings: Settings) -> dict[str, Any]:
    """run_webhook/start_webhook arguments: PTB checks the secret header on every update."""
    url = settings.telegram_webhook_url or ""
    return {
        "listen": "0.0.0.0",
        "port": settings.port,
        "url_path": _webhook_path(url),
        "webhook_url": url,
        "secret_token": settings.telegram_webhook_secret.get_secret_value(),
    }


def main() -> None:
    """Entry point (vasooli bot calls it); a settings problem exits with status 2."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every long-poll request at INFO (the token in its URLs is masked by
    # db/redact.py); quiet unless `vasooli --verbose` already chose a level for it.
    if logging.getLogger("httpx").level == logging.NOTSET:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = load_settings()
        check_settings(settings)
    except SettingsError as exc:
        print(f"vasooli bot: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
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
    from bot.serve import running_bot  # bot.serve imports this module

    engine = make_engine(settings.database_url)
    try:
        async with running_bot(settings, make_session_factory(engine)):
            await asyncio.Event().wait()  # until the task is cancelled
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
