"""Passwords (argon2 through passlib) and invite codes: the only place secrets are made."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from functools import cache

from passlib.context import CryptContext

from db.services.errors import InvalidInput

MIN_PASSWORD = 8
MAX_PASSWORD = 128
# 12 random bytes -> 16 URL-safe characters (A-Z a-z 0-9 _ -): a valid /start payload.
INVITE_BYTES = 12
MAX_CODE = 64

# The passwords every guessing list starts with; length alone would let them through.
_COMMON = frozenset(
    {
        "password",
        "password1",
        "password123",
        "passw0rd",
        "12345678",
        "123456789",
        "1234567890",
        "qwertyuiop",
        "qwerty123",
        "iloveyou",
        "11111111",
        "00000000",
        "abcdefgh",
        "abcd1234",
        "87654321",
        "letmein1",
        "welcome1",
        "admin123",
        "vasooli1",
        "vasooli123",
    }
)


@cache
def password_context() -> CryptContext:
    """The passlib context, built on first use (argon2; old parameters are rehashed)."""
    return CryptContext(schemes=["argon2"], deprecated="auto")


def check_password_rules(password: str) -> None:
    """Refuse a password that is too short, too long, trivial or holds control characters."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"The password needs at least {MIN_PASSWORD} characters.",
            code="password_short",
            min_len=MIN_PASSWORD,
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(
            f"The password can have at most {MAX_PASSWORD} characters.",
            code="password_long",
            max_len=MAX_PASSWORD,
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in password):
        raise InvalidInput(
            "The password contains characters that cannot be typed; use visible ones.",
            code="password_control",
        )
    if len(set(password)) == 1 or password.casefold() in _COMMON:
        raise InvalidInput(
            "That password is too easy to guess; choose a less common one.",
            code="password_common",
        )


def hash_password(password: str) -> str:
    """An argon2 hash of password (check the rules first with check_password_rules)."""
    return password_context().hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Whether password matches password_hash; a missing or malformed hash never matches."""
    if not password_hash or not password or len(password) > 4 * MAX_PASSWORD:
        return False
    try:
        return password_context().verify(password, password_hash)
    except (ValueError, TypeError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with parameters the context no longer prefers."""
    try:
        return password_context().needs_update(password_hash)
    except (ValueError, TypeError):
        return False


def new_invite_code() -> str:
    """A fresh random invite code: 16 URL-safe characters, fit for a Telegram deep link."""
    return secrets.token_urlsafe(INVITE_BYTES)


def hash_code(code: str) -> str:
    """The sha256 hex of a code: codes are random, so a fast hash is safe and searchable."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()
