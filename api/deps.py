"""What every endpoint depends on: the settings, a database session, and the caller.

The caller's key is checked, rate-counted and its use recorded in a short transaction of
its own, committed before the endpoint's work starts (a refused call changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from db import clock
from db.agency import Agency, agency_of
from db.config import Settings
from db.services.errors import AuthError
from db.services.staff.api_calls import ApiCaller, authenticate
from db.services.staff.api_keys import ApiScope

READS = ("GET", "HEAD")

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="API key",
    description="An API key from the bot's /apikey new (admins): `Authorization: Bearer vsk_…`",
)


@dataclass(frozen=True)
class Wiring:
    settings: Settings
    factory: sessionmaker[Session]

    @property
    def agency(self) -> Agency:
        return agency_of(self.settings)

    def today(self) -> date:
        return clock.today(self.settings.tz)


def wiring(request: Request) -> Wiring:
    wired: Wiring = request.app.state.wiring
    return wired


def db_session(wired: Annotated[Wiring, Depends(wiring)]) -> Iterator[Session]:
    """The endpoint's session, closed as soon as the endpoint returns (scope="function"
    below): on SQLite an open transaction holds the write lock the audit row needs."""
    with wired.factory() as session:
        yield session


def caller(
    request: Request,
    wired: Annotated[Wiring, Depends(wiring)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiCaller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthError("Send an API key: Authorization: Bearer <key>.", code="api_key_missing")
    with wired.factory() as session:  # its own short transaction (a refusal rolls back)
        found = authenticate(
            session,
            token=credentials.credentials,
            now=clock.utcnow(),
            today=wired.today(),
            rate_per_minute=wired.settings.api_rate_per_minute,
            read=request.method in READS,
        )
        session.commit()
    request.state.api_caller = found  # the audit middleware reads it after the response
    return found


def scoped(scope: ApiScope) -> Callable[[ApiCaller], ApiCaller]:
    """A dependency: the caller, refused (403) unless their key has scope."""

    def check(who: Annotated[ApiCaller, Depends(caller)]) -> ApiCaller:
        who.require(scope)
        return who

    return check


Reader = Annotated[ApiCaller, Depends(scoped(ApiScope.READ))]
PaymentWriter = Annotated[ApiCaller, Depends(scoped(ApiScope.PAYMENTS_WRITE))]
PromiseWriter = Annotated[ApiCaller, Depends(scoped(ApiScope.PROMISES_WRITE))]
LoanWriter = Annotated[ApiCaller, Depends(scoped(ApiScope.LOANS_WRITE))]
Db = Annotated[Session, Depends(db_session, scope="function")]
Wired = Annotated[Wiring, Depends(wiring)]
