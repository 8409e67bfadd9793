"""For the Mini App's tests: initData made as Telegram makes it, the app mounted at /app."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.routing import Mount

from bot.miniapp import build_app
from bot.miniapp.auth import sign_init_data
from db import clock
from db.config import Settings

BOT_TOKEN = "123456:TEST-mini-app-token"


def init_data(
    user_id: int, *, token: str = BOT_TOKEN, auth_date: datetime | None = None, **extra: str
) -> str:
    """initData for user_id signed with token, as Telegram would send it."""
    when = auth_date or clock.utcnow()
    fields = {
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps({"id": user_id, "first_name": "Meera", "language_code": "en"}),
        "auth_date": str(int(when.timestamp())),
        **extra,
    }
    fields["hash"] = sign_init_data(fields, token)
    return urlencode(fields)


def app_settings(database_url: str, **overrides: object) -> Settings:
    return Settings(
        _env_file=None, database_url=database_url, telegram_bot_token=BOT_TOKEN, **overrides
    )


def mounted(settings: Settings, factory: sessionmaker[Session]) -> Starlette:
    """The Mini App at /app, as `vasooli web` serves it."""
    return Starlette(routes=[Mount("/app", build_app(settings, factory))])


def set_clock(moment: datetime) -> None:
    """Make clock.utcnow() read moment (clock.reset() undoes it; conftest resets each test)."""
    clock.reset()
    clock.advance(moment - datetime.now(UTC))
