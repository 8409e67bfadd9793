"""The FastAPI app: routers, problem details for every error, and the audit of writes.

Calls authenticate with an API key (`Authorization: Bearer vsk_…`) made by an admin in the
bot; a key acts as its staff member through the same access rules as the bot
(db/services/access.py), and further only within its scopes. Writes are audited one row
per call after the answer is known (status included); reads are counted per key per day
(db/services/staff/api_calls.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api import borrowers, loans, problems, reports
from api.deps import READS, Wiring
from db.config import Settings
from db.services.staff.api_calls import ApiCaller, audit_call

log = logging.getLogger(__name__)

VERSION = "1"
DESCRIPTION = """Vasooli's loans, borrowers, payments, promises, SMS and reports for other
systems. Authenticate with an API key an admin creates in the bot (`/apikey new <name>
[scope…]`), sent as `Authorization: Bearer <key>`. Money is a decimal string. Errors are
problem details (RFC 9457, `application/problem+json`). `POST /loans/{loan_number}/payments`
needs an `Idempotency-Key` header: a retry with the same key never records twice."""


def build_api(settings: Settings, factory: sessionmaker[Session]) -> FastAPI:
    """The API, to be mounted at /api/v1 (its schema is then /api/v1/openapi.json)."""
    app = FastAPI(
        title="Vasooli API",
        version=VERSION,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        responses=problems.PROBLEM_RESPONSES,
    )
    app.state.wiring = Wiring(settings, factory)
    problems.install(app)
    for module in (loans, borrowers, reports):
        app.include_router(module.router)
    _audit_writes(app, factory)
    return app


def _audit_writes(app: FastAPI, factory: sessionmaker[Session]) -> None:
    @app.middleware("http")
    async def audit_and_contain(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            response = await call_next(request)
        except Exception:
            # The cause stays in the server's log; the caller gets a plain 500 problem.
            log.exception("API call %s %s failed", request.method, request.url.path)
            response = problems.unexpected()
        who = getattr(request.state, "api_caller", None)
        if who is not None and request.method not in READS:
            await run_in_threadpool(_audit, factory, who, request, response.status_code)
        return response


def _audit(factory: sessionmaker[Session], who: ApiCaller, request: Request, status: int) -> None:
    try:
        with factory() as session:
            audit_call(
                session, caller=who, method=request.method, path=request.url.path, status=status
            )
            session.commit()
    except Exception:  # the answer is already decided; a lost audit row must not hide it
        log.exception("could not audit API call %s %s", request.method, request.url.path)
