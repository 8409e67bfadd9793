"""The Mini App beside the web app: one ASGI app on one port, and the demo's login link.

Here because only the command line may import both the bot (the Mini App is part of the
Telegram adapter) and the scheduler (Twilio's webhooks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker

from db import clock
from db.config import Settings
from db.models import Role

log = logging.getLogger(__name__)

API_PATH = "/api/v1"


def web_app(settings: Settings, factory: sessionmaker[Session], bot_app: Any = None) -> Any:
    """Telegram's webhook (with bot_app, in webhook mode), the Mini App at /app (when
    TELEGRAM_BOT_TOKEN is set), borrowers' statement links at /s, the JSON API at /api/v1,
    Twilio's webhooks and the health check."""
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute, Mount

    from api import build_api
    from bot.miniapp import build_app as build_miniapp
    from bot.serve import webhook_route
    from scheduler.statement_web import build_statement_app
    from scheduler.web import build_web_app

    routes: list[BaseRoute] = []
    if bot_app is not None and settings.telegram_webhook_url:
        routes.append(webhook_route(bot_app, settings))
    if settings.telegram_bot_token is not None:
        routes.append(Mount("/app", build_miniapp(settings, factory)))
    else:
        log.info("the Mini App (/app/) is off: TELEGRAM_BOT_TOKEN is not set")
    routes.append(Mount("/s", build_statement_app(settings, factory)))
    routes.append(Mount(API_PATH, build_api(settings, factory)))
    routes.append(Mount("/", build_web_app(settings, factory)))
    return Starlette(routes=routes)


def with_miniapp(settings: Settings, factory: sessionmaker[Session]) -> Callable[[Any], Any]:
    """Put the Mini App at /app and the JSON API at /api/v1 beside a web app (the demo's,
    on its own port)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from api import build_api
    from bot.miniapp import build_app as build_miniapp

    miniapp, api = build_miniapp(settings, factory), build_api(settings, factory)
    return lambda web: Starlette(
        routes=[Mount("/app", miniapp), Mount(API_PATH, api), Mount("/", web)]
    )


def miniapp_line(agency: Any, settings: Settings) -> str:
    """The demo banner's line: the dashboards' local URL, signed in as the demo manager."""
    from bot.miniapp.auth import signed_init_data

    manager = next((p for p in agency.people if p.role is Role.MANAGER), None)
    if manager is None or settings.telegram_bot_token is None:
        return "Dashboards (Mini App): no demo manager to sign in as."
    token = settings.telegram_bot_token.get_secret_value()
    data = signed_init_data(manager.telegram_user_id, manager.name, token, clock.utcnow())
    url = f"{settings.public_base_url}/app/?initData={quote(data)}"
    return f"Dashboards (the Mini App) in a browser, as {manager.name}: {url}"
