"""Telegram Web App initData, checked as Telegram specifies, and the page's signed session.

initData (https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app):
the data-check-string is every received field except `hash`, as key=value, sorted by key
and joined by "\\n"; secret_key = HMAC-SHA256(key="WebAppData", msg=bot token); the hash is
the hex HMAC-SHA256(key=secret_key, msg=data-check-string). auth_date must be recent, so a
leaked initData is good for minutes, not forever.

The page's session is a cookie "staff_id.session_id.telegram_user_id.expires.signature",
signed with a key derived from the bot token (never the token itself): a new token
logs everyone out of the Mini App.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import parse_qsl, urlencode

MAX_INIT_DATA = 4096  # Telegram's initData is a few hundred bytes
MAX_USER_ID = 2**63  # the staff table's BIGINT; Telegram's ids use at most 52 bits
# The clock of Telegram and ours may differ a little: auth_date a bit ahead is accepted.
CLOCK_SKEW = timedelta(seconds=30)


class Refusal(StrEnum):
    MISSING = "missing"
    MALFORMED = "malformed"
    BAD_HASH = "bad_hash"
    STALE = "stale"


class InitDataError(Exception):
    """initData that does not prove who the user is; .reason says why."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class WebAppUser:
    telegram_user_id: int
    first_name: str
    auth_date: datetime


def _secret(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "hash")


def sign_init_data(fields: dict[str, str], bot_token: str) -> str:
    """The hash Telegram would put on these fields (for tests and the demo's login link)."""
    check = data_check_string(fields).encode()
    return hmac.new(_secret(bot_token), check, hashlib.sha256).hexdigest()


def signed_init_data(telegram_user_id: int, first_name: str, bot_token: str, now: datetime) -> str:
    """initData as Telegram would send it for this user now: the demo's ready login link."""
    fields = {
        "user": json.dumps({"id": telegram_user_id, "first_name": first_name}),
        "auth_date": str(int(now.timestamp())),
    }
    fields["hash"] = sign_init_data(fields, bot_token)
    return urlencode(fields)


def _fields(init_data: str) -> dict[str, str]:
    if not init_data:
        raise InitDataError(Refusal.MISSING)
    if len(init_data) > MAX_INIT_DATA:
        raise InitDataError(Refusal.MALFORMED)
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataError(Refusal.MALFORMED) from None
    fields = dict(pairs)
    if len(fields) != len(pairs):  # a repeated key could mean two different things
        raise InitDataError(Refusal.MALFORMED)
    return fields


def _user(fields: dict[str, str], auth_date: datetime) -> WebAppUser:
    try:
        user = json.loads(fields["user"])
        uid = user["id"]
    except (KeyError, TypeError, ValueError):
        raise InitDataError(Refusal.MALFORMED) from None
    if not isinstance(uid, int) or isinstance(uid, bool) or not 0 < uid < MAX_USER_ID:
        raise InitDataError(Refusal.MALFORMED)
    return WebAppUser(uid, str(user.get("first_name") or ""), auth_date)


def validate_init_data(
    init_data: str, *, bot_token: str, now: datetime, max_age: timedelta
) -> WebAppUser:
    """The user Telegram vouches for, or InitDataError (missing, malformed, bad_hash, stale)."""
    fields = _fields(init_data)
    given = fields.get("hash", "")
    expected = sign_init_data(fields, bot_token)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise InitDataError(Refusal.BAD_HASH)
    stamp = fields.get("auth_date", "")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise InitDataError(Refusal.MALFORMED)
    auth_date = datetime.fromtimestamp(int(stamp), tz=now.tzinfo)
    if now - auth_date > max_age or auth_date - now > CLOCK_SKEW:
        raise InitDataError(Refusal.STALE)
    return _user(fields, auth_date)


# --- the page's session cookie ---------------------------------------------------------------


@dataclass(frozen=True)
class PageSession:
    staff_id: int
    session_id: int
    telegram_user_id: int
    expires: int  # unix seconds


def cookie_key(bot_token: str) -> bytes:
    """The cookie's signing key: derived from the token, useless for talking to Telegram."""
    return hmac.new(b"VasooliMiniAppSession", bot_token.encode(), hashlib.sha256).digest()


def _mac(key: bytes, body: str) -> str:
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def make_cookie(page: PageSession, key: bytes) -> str:
    body = f"{page.staff_id}.{page.session_id}.{page.telegram_user_id}.{page.expires}"
    return f"{body}.{_mac(key, body)}"


def read_cookie(value: str, key: bytes, *, now: datetime) -> PageSession | None:
    """The session a cookie carries if its signature is ours and it has not expired."""
    body, _, mac = value.rpartition(".")
    if not body or not hmac.compare_digest(mac.encode(), _mac(key, body).encode()):
        return None
    parts = body.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    page = PageSession(*(int(p) for p in parts))
    return page if page.expires > now.timestamp() else None
