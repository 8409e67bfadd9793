"""The dashboards as a Telegram Mini App (Web App), served by `vasooli web` at /app/."""

from bot.miniapp.app import build_app

__all__ = ["build_app"]
