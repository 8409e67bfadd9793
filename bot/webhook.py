"""The bot's settings check and its webhook's path, shared by python -m bot and bot/serve.py."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from db.config import Settings, SettingsError, require, required_secret

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
        if not _SECRET.match(
            required_secret(settings.telegram_webhook_secret, "telegram_webhook_secret")
        ):
            raise SettingsError(
                "setting TELEGRAM_WEBHOOK_SECRET is invalid: use 1-256 of A-Z a-z 0-9 _ -"
            )


def _webhook_path(url: str) -> str:
    """The path PTB listens on: the webhook URL's own path (Telegram posts there)."""
    return urlsplit(url).path.strip("/") or "telegram"
