"""Paging shared by every long list: the page size check and opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii

from db.services.errors import InvalidInput

MAX_PAGE = 100


def check_page(limit: int, offset: int = 0) -> None:
    """Refuse a page size outside 1..MAX_PAGE or a negative offset."""
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"A page holds 1 to {MAX_PAGE} loans.", code="page_size")


def bad_cursor() -> InvalidInput:
    """The refusal for a page token that was tampered with or no longer fits."""
    return InvalidInput("That page link is no longer valid; start again.", code="cursor")


def encode_cursor(*parts: object) -> str:
    """An opaque page token for a sort key."""
    raw = "|".join("" if p is None else str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, size: int) -> list[str]:
    """The parts of a token made by encode_cursor; InvalidInput when it was tampered with."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    parts = raw.split("|")
    if len(parts) != size:
        raise bad_cursor()
    return parts
