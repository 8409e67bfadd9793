"""The Mini App's Starlette app: sign-in with Telegram's initData, then the dashboard pages.

Mounted at /app by the command line (one server, one port, with Twilio's webhooks), so the
paths here are relative to it and the pages link to each other relatively. Database work
runs in threads; every page checks the signed cookie AND the staff member's live bot
session, so a logout, a disabled account or a changed role closes the dashboards at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.miniapp import pages, texts
from bot.miniapp.auth import (
    InitDataError,
    PageSession,
    cookie_key,
    make_cookie,
    read_cookie,
    validate_init_data,
)
from db import clock
from db.agency import agency_of
from db.config import Settings, require
from db.money import format_money
from db.services.errors import AccessDenied, AuthError, ServiceError
from db.services.staff.app_login import AppLogin, dashboard_login

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
COOKIE = "vasooli_app"
MAX_FORM_BYTES = 8 * 1024
# Only our own script and style run, even if a value ever slipped through unescaped; the
# page may be framed by Telegram's web client only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'self' https://web.telegram.org https://*.web.telegram.org"
)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": CSP,
}


@dataclass(frozen=True)
class Outcome:
    """What a request in a thread decided: a page to render (or a refusal) and its status."""

    template: str
    status: int = 200
    context: dict[str, Any] = field(default_factory=dict)
    login: AppLogin | None = None


def refusal(status: int, message: str, hint: str, *, retry: bool = False) -> Outcome:
    return Outcome("refused.html", status, {"message": message, "hint": hint, "retry": retry})


async def _read_small(request: Request) -> bytes | None:
    """The request body, or None when it is larger than a sign-in form can be."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def make_env(settings: Settings) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value, names and notes included, is escaped
        undefined=jinja2.StrictUndefined,
    )
    agency = agency_of(settings)
    env.filters["money"] = lambda v: format_money(Decimal(v), agency)
    env.filters["day"] = lambda d: f"{d:%d %b %Y}" if d else "–"
    env.globals["agency"] = agency.name
    return env


class MiniApp:
    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        require(settings, "telegram_bot_token")
        assert settings.telegram_bot_token is not None
        self.settings, self.factory = settings, factory
        self.token = settings.telegram_bot_token.get_secret_value()
        self.key = cookie_key(self.token)
        self.env = make_env(settings)

    def render(self, outcome: Outcome) -> HTMLResponse:
        html = self.env.get_template(outcome.template).render(**outcome.context)
        return HTMLResponse(html, status_code=outcome.status, headers=HEADERS)

    # --- signing in ----------------------------------------------------------------------

    def _login(self, telegram_user_id: int, session_id: int | None = None) -> Outcome:
        """Check the staff member and their bot session in the database (in a thread)."""
        with self.factory() as session:
            try:
                login = dashboard_login(
                    session,
                    telegram_user_id=telegram_user_id,
                    idle_minutes=self.settings.session_idle_minutes,
                    max_hours=self.settings.session_max_hours,
                    session_id=session_id,
                )
            except AuthError as err:
                session.commit() if err.params.get("commit") else session.rollback()
                return refusal(401, err.message, texts.LOGIN_FIRST)
            except AccessDenied as err:
                return refusal(403, err.message, texts.WRONG_ROLE_HINT)
            session.commit()  # the bot session's last_seen_at: the dashboards are activity
            return Outcome("", login=login)

    async def entry(self, request: Request) -> Response:
        # Always signs in afresh: the Telegram user may not be the one of an older cookie.
        return self.render(Outcome("login.html"))

    async def auth(self, request: Request) -> Response:
        body = await _read_small(request)
        if body is None:
            return Response("request too large", status_code=413)
        # A plain urlencoded form (python-multipart is not a dependency); initData itself
        # is a query string, checked field by field by validate_init_data.
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            user = validate_init_data(
                form.get("initData", ""),
                bot_token=self.token,
                now=clock.utcnow(),
                max_age=timedelta(seconds=self.settings.miniapp_auth_max_age_seconds),
            )
        except InitDataError as err:
            log.info("mini app sign-in refused: %s", err.reason.value)
            return self.render(refusal(401, texts.INIT_DATA[err.reason], texts.REOPEN))
        outcome = await run_in_threadpool(self._login, user.telegram_user_id)
        if outcome.login is None:
            return self.render(outcome)
        return self._signed_in(request, outcome.login)

    def _signed_in(self, request: Request, login: AppLogin) -> Response:
        minutes = self.settings.miniapp_session_minutes
        expires = int(clock.utcnow().timestamp()) + minutes * 60
        page = PageSession(login.actor.staff_id, login.session_id, login.telegram_user_id, expires)
        response = RedirectResponse("portfolio", status_code=303)
        secure = request.url.scheme == "https" or (self.settings.public_base_url or "").startswith(
            "https://"
        )
        response.set_cookie(
            COOKIE,
            make_cookie(page, self.key),
            max_age=minutes * 60,
            path=(request.scope.get("root_path") or "") + "/",
            httponly=True,
            secure=secure,
            # Telegram's web client shows a Mini App in a cross-site iframe: it needs
            # SameSite=None (with Secure); plain http (local runs) keeps Lax.
            samesite="none" if secure else "lax",
        )
        return response

    # --- the pages -----------------------------------------------------------------------

    def _page_session(self, request: Request) -> PageSession | None:
        return read_cookie(request.cookies.get(COOKIE, ""), self.key, now=clock.utcnow())

    def _build(self, page: PageSession, builder: pages.Builder, query: dict[str, str]) -> Outcome:
        checked = self._login(page.telegram_user_id, page.session_id)
        if checked.login is None:
            return checked
        if checked.login.actor.staff_id != page.staff_id:
            return refusal(401, texts.NO_PAGE_SESSION, texts.REOPEN, retry=True)
        with self.factory() as session:
            try:
                template, context = builder(session, checked.login.actor, self.settings, query)
            except ServiceError as err:
                return refusal(400, err.message, texts.REOPEN)
        return Outcome(template, 200, {**context, "me": checked.login.actor})

    def page(self, builder: pages.Builder):
        async def endpoint(request: Request) -> Response:
            page = self._page_session(request)
            if page is None:
                return self.render(refusal(401, texts.NO_PAGE_SESSION, texts.REOPEN, retry=True))
            query = dict(request.query_params)
            return self.render(await run_in_threadpool(self._build, page, builder, query))

        return endpoint


def build_app(settings: Settings, session_factory: sessionmaker[Session]) -> Starlette:
    """The Mini App, to mount at /app; SettingsError without TELEGRAM_BOT_TOKEN."""
    app = MiniApp(settings, session_factory)
    routes = [
        Route("/", app.entry, methods=["GET"]),
        Route("/auth", app.auth, methods=["POST"]),
        *(Route(f"/{name}", app.page(b), methods=["GET"]) for name, b in pages.PAGES.items()),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)
