"""API keys for the JSON API: created, listed and revoked by admins (the bot's /apikey).

A key acts as one active staff member (the admin who made it, or the member named with
`for:`), limited to that member's role and loans and further by the key's scopes. The token
is 256 random bits, shown once; only its sha256 is stored (a slow password hash buys nothing
against a guess of 256 bits), with a short prefix for lists.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import clock
from db.models import ApiKey, Role, Staff, StaffState
from db.services.access import Actor, require_role
from db.services.audit.write import AuditAction, audit
from db.services.errors import Conflict, InvalidInput, NotFound
from db.services.staff.members import pick_staff, staff_query
from db.validation import clean_text

TOKEN_PREFIX = "vsk_"
PREFIX_SHOWN = 12  # "vsk_" and 8 characters: enough to tell keys apart in a list
MAX_KEYS_LISTED = 50


class ApiScope(StrEnum):
    READ = "read"
    PAYMENTS_WRITE = "payments:write"
    PROMISES_WRITE = "promises:write"
    LOANS_WRITE = "loans:write"


@dataclass(frozen=True)
class ApiKeyInfo:
    id: int
    name: str
    prefix: str
    scopes: tuple[ApiScope, ...]
    staff_id: int
    staff_name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    reads_total: int


@dataclass(frozen=True)
class NewApiKey:
    info: ApiKeyInfo
    token: str  # shown once, never stored


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(words: list[str]) -> tuple[ApiScope, ...]:
    """Scopes from the words typed (default: read); InvalidInput names the known ones."""
    scopes: list[ApiScope] = []
    for word in words or [ApiScope.READ.value]:
        try:
            scope = ApiScope(word.strip().lower())
        except ValueError:
            known = ", ".join(s.value for s in ApiScope)
            raise InvalidInput(
                f"Unknown scope {word}; use {known}.", code="api_scope", known=known
            ) from None
        if scope not in scopes:
            scopes.append(scope)
    return tuple(scopes)


def scopes_of(key: ApiKey) -> tuple[ApiScope, ...]:
    return tuple(ApiScope(s) for s in key.scopes.split())


def _info(key: ApiKey, staff: Staff) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=scopes_of(key),
        staff_id=staff.id,
        staff_name=staff.name,
        role=staff.role,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
        reads_total=key.reads_total,
    )


def _holder(session: Session, actor: Actor, who: str | None) -> Staff:
    if who is None:
        return session.get_one(Staff, actor.staff_id)
    active = list(
        session.scalars(select(Staff).where(Staff.state == StaffState.ACTIVE).order_by(Staff.id))
    )
    query = staff_query(who)
    return pick_staff(active, query, missing=f"No active staff member matches {query}.")


def create_api_key(
    session: Session,
    *,
    actor: Actor,
    name: str,
    scopes: tuple[ApiScope, ...] = (ApiScope.READ,),
    for_staff: str | None = None,
) -> NewApiKey:
    """A new key acting as actor (or the active member for_staff names); admins only."""
    require_role(actor, Role.ADMIN, "create API keys")
    label = clean_text(name, field="name", max_len=60)
    assert label is not None
    if not scopes:
        raise InvalidInput("Give at least one scope.", code="api_scope")
    holder = _holder(session, actor, for_staff)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        staff_id=holder.id,
        created_by_id=actor.staff_id,
        name=label,
        prefix=token[:PREFIX_SHOWN],
        token_hash=token_hash(token),
        scopes=" ".join(s.value for s in scopes),
        window_calls=0,
        reads_on_day=0,
        reads_total=0,
    )
    session.add(key)
    session.flush()
    details = {"name": label, "prefix": key.prefix, "scopes": key.scopes, "staff_id": holder.id}
    audit(
        session,
        actor=actor,
        action=AuditAction.API_KEY_CREATED,
        target_type="api_key",
        target_id=key.id,
        details=details,
    )
    return NewApiKey(_info(key, holder), token)


def list_api_keys(
    session: Session, *, actor: Actor, include_revoked: bool = False
) -> list[ApiKeyInfo]:
    """The keys, newest first (admins only)."""
    require_role(actor, Role.ADMIN, "list API keys")
    stmt = select(ApiKey, Staff).join(Staff, Staff.id == ApiKey.staff_id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    stmt = stmt.order_by(ApiKey.id.desc()).limit(MAX_KEYS_LISTED)
    return [_info(key, staff) for key, staff in session.execute(stmt)]


def _key(session: Session, key_id: int, *, lock: bool = False) -> tuple[ApiKey, Staff]:
    stmt = select(ApiKey, Staff).join(Staff, Staff.id == ApiKey.staff_id)
    stmt = stmt.where(ApiKey.id == key_id)
    if lock:
        stmt = stmt.with_for_update(of=ApiKey)
    row = session.execute(stmt.execution_options(populate_existing=True)).first()
    if row is None:
        raise NotFound(f"No API key {key_id}.", code="api_key_not_found", key_id=key_id)
    return row[0], row[1]


def get_api_key(session: Session, *, actor: Actor, key_id: int) -> ApiKeyInfo:
    """One key (admins only): what the revoke confirmation shows."""
    require_role(actor, Role.ADMIN, "see API keys")
    return _info(*_key(session, key_id))


def revoke_api_key(session: Session, *, actor: Actor, key_id: int) -> ApiKeyInfo:
    """Revoke a key at once (admins only); a revoked key is refused from the next call."""
    require_role(actor, Role.ADMIN, "revoke API keys")
    key, staff = _key(session, key_id, lock=True)
    if key.revoked_at is not None:
        raise Conflict(f"API key {key_id} is already revoked.", code="api_key_revoked")
    key.revoked_at, key.revoked_by_id = clock.utcnow(), actor.staff_id
    audit(
        session,
        actor=actor,
        action=AuditAction.API_KEY_REVOKED,
        target_type="api_key",
        target_id=key.id,
        details={"name": key.name, "prefix": key.prefix},
    )
    session.flush()
    return _info(key, staff)
