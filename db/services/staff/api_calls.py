"""Calls through the JSON API: who a token is, the per-key rate limit, usage, audit, replays.

Every call updates its key's row once (rate window, last use, the day's read count), in a
short transaction of its own before the call's work. Writes are audited one row per call
(key, method, path, status); reads would flood the audit log, so they are counted per key
per day, and the first read of a new day writes one API_READS audit row for the finished day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import ApiKey, IdempotencyKey, Staff
from db.services.access import Actor
from db.services.audit.write import AuditAction, audit
from db.services.errors import AccessDenied, AuthError, ServiceError
from db.services.staff.api_keys import ApiScope, scopes_of, token_hash

RATE_WINDOW = timedelta(minutes=1)


class RateLimited(ServiceError):
    """Too many calls with one key in the current minute; retry_after is in seconds."""

    code = "rate_limited"


@dataclass(frozen=True)
class ApiCaller:
    key_id: int
    actor: Actor
    scopes: tuple[ApiScope, ...]

    def require(self, scope: ApiScope) -> None:
        if scope not in self.scopes:
            raise AccessDenied(
                f"This API key lacks the {scope.value} scope.", code="scope", scope=scope
            )


def _refuse() -> AuthError:
    return AuthError("Unknown or revoked API key.", code="api_key")


def _count_call(key: ApiKey, now: datetime, rate_per_minute: int) -> None:
    start = key.window_started_at
    if start is None or now - start >= RATE_WINDOW:
        key.window_started_at, key.window_calls = now, 0
    elif key.window_calls >= rate_per_minute:
        wait = (start + RATE_WINDOW - now).total_seconds()
        raise RateLimited(
            "Too many calls with this API key; wait a moment.",
            retry_after=max(1, int(wait + 0.999)),
        )
    key.window_calls += 1


def _count_read(session: Session, key: ApiKey, today: date) -> None:
    if key.reads_day != today:
        if key.reads_day is not None and key.reads_on_day:
            audit(
                session,
                actor=None,
                action=AuditAction.API_READS,
                target_type="api_key",
                target_id=key.id,
                details={"day": key.reads_day, "reads": key.reads_on_day},
            )
        key.reads_day, key.reads_on_day = today, 0
    key.reads_on_day += 1
    key.reads_total += 1


def authenticate(
    session: Session,
    *,
    token: str,
    now: datetime,
    today: date,
    rate_per_minute: int,
    read: bool,
) -> ApiCaller:
    """The caller a token stands for, counted against its rate; AuthError or RateLimited.

    A refused call changes nothing (the caller rolls back); an accepted one is committed
    by the caller before the call's own work starts.
    """
    if not token.isascii() or len(token) > 200:
        raise _refuse()
    stmt = (
        select(ApiKey, Staff)
        .join(Staff, Staff.id == ApiKey.staff_id)
        .where(ApiKey.token_hash == token_hash(token))
        .with_for_update(of=ApiKey)
        .execution_options(populate_existing=True)
    )
    row = session.execute(stmt).first()
    if row is None or row[0].revoked_at is not None:
        raise _refuse()
    key, staff = row
    try:
        actor = Actor.of(staff)
    except AccessDenied:
        raise AuthError(
            "The staff member of this API key is not active.", code="inactive"
        ) from None
    _count_call(key, now, rate_per_minute)
    key.last_used_at = now
    if read:
        _count_read(session, key, today)
    session.flush()
    return ApiCaller(key.id, actor, scopes_of(key))


def audit_call(session: Session, *, caller: ApiCaller, method: str, path: str, status: int) -> None:
    """One audit row for a write through the API, whatever its outcome."""
    audit(
        session,
        actor=caller.actor,
        action=AuditAction.API_CALL,
        target_type="api_key",
        target_id=caller.key_id,
        details={"method": method, "path": path[:200], "status": status},
    )


# --- Idempotency-Key: the first answer, replayed ------------------------------------------


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: str
    status: int
    body: dict[str, Any]


def stored_answer(session: Session, *, key_id: int, key: str) -> StoredAnswer | None:
    """The answer first given to this key's request with this Idempotency-Key, if any."""
    row = session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.api_key_id == key_id, IdempotencyKey.key == key)
    ).first()
    if row is None:
        return None
    return StoredAnswer(row.request_hash, row.response_status, row.response_body)


def store_answer(
    session: Session,
    *,
    key_id: int,
    key: str,
    request_hash: str,
    status: int,
    body: dict[str, Any],
) -> bool:
    """Keep the answer beside the change it describes (same transaction); False when a
    concurrent call with the same key stored one first (the caller rolls back and replays)."""
    try:
        with session.begin_nested():
            session.add(
                IdempotencyKey(
                    api_key_id=key_id,
                    key=key,
                    request_hash=request_hash,
                    response_status=status,
                    response_body=body,
                )
            )
    except IntegrityError:
        return False
    return True
