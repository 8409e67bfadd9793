"""The short-lived signed link a borrower gets by texting STATEMENT.

A link is PUBLIC_BASE_URL/s/<loan id>.<expiry, unix seconds>.<signature>: the signature is
HMAC-SHA256 over "statement:<loan id>:<expiry>" with the link key, base64url, cut to 128
bits (short enough for one SMS, far beyond guessing). The key is STATEMENT_LINK_SECRET, or
derived from TWILIO_AUTH_TOKEN (HMAC with a label, so the token itself never signs links).
A link whose signature does not match, that has expired or whose loan is gone shows
nothing (the web route answers 404 to all three alike).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from db.agency import Agency
from db.config import Settings

PATH = "/s/"
_LABEL = b"vasooli statement link v1"
_SIG_BYTES = 16


@dataclass(frozen=True)
class StatementLinks:
    base_url: str
    key: bytes
    hours: int

    def _sign(self, loan_id: int, expires: int) -> str:
        mac = hmac.new(self.key, f"statement:{loan_id}:{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:_SIG_BYTES]).decode().rstrip("=")

    def link_for(self, loan_id: int, now: datetime) -> str:
        """A link to loan_id's statement, valid for `hours` from now."""
        expires = int((now + timedelta(hours=self.hours)).timestamp())
        token = f"{loan_id}.{expires}.{self._sign(loan_id, expires)}"
        return f"{self.base_url.rstrip('/')}{PATH}{token}"

    def loan_of(self, token: str, now: datetime) -> int | None:
        """The loan id a token names when its signature holds and it has not expired."""
        parts = token.split(".")
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            return None
        if len(parts[0]) > 18 or len(parts[1]) > 12:
            return None
        loan_id, expires = int(parts[0]), int(parts[1])
        if not hmac.compare_digest(parts[2].encode(), self._sign(loan_id, expires).encode()):
            return None
        return loan_id if now.timestamp() < expires else None


def links_of(settings: Settings) -> StatementLinks | None:
    """The links the settings allow, or None (no PUBLIC_BASE_URL, or no key to sign with)."""
    if not settings.public_base_url:
        return None
    if settings.statement_link_secret is not None:
        key = settings.statement_link_secret.get_secret_value().encode()
    elif settings.twilio_auth_token is not None:
        token = settings.twilio_auth_token.get_secret_value().encode()
        key = hmac.new(token, _LABEL, hashlib.sha256).digest()
    else:
        return None
    return StatementLinks(settings.public_base_url, key, settings.statement_link_hours)


def statement_reply(
    agency: Agency,
    *,
    found: bool,
    loan_id: int | None,
    loan_number: str | None,
    links: StatementLinks | None,
    now: datetime,
) -> str:
    """The SMS answering STATEMENT: the link to the loan's statement, or why there is none."""
    if not found:
        return f"{agency.name}: we could not find an account for this number."
    if loan_id is None:
        return f"{agency.name}: you have no loan with us to show."
    if links is None:
        call = f"call {agency.phone}" if agency.phone else "contact your agent"
        return f"{agency.name}: for a statement of loan {loan_number}, please {call}."
    return (
        f"{agency.name}: statement of loan {loan_number}: {links.link_for(loan_id, now)} "
        f"(valid {links.hours} h)"
    )
