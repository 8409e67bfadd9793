"""Finding loans: one loan by number for an actor, and the paging every loan list shares."""

from __future__ import annotations

import base64
import binascii

from sqlalchemy import select
from sqlalchemy.orm import Session, defaultload, selectinload

from db.models import Borrower, Loan
from db.services.access import Actor, check_loan, refuse_archived, refuse_read_only
from db.services.errors import InvalidInput
from db.validation import parse_loan_number

MAX_PAGE = 100
# A list line never shows tags: skip the selectin query Borrower.tags would add per page.
NO_TAGS = defaultload(Loan.borrower).lazyload(Borrower.tags)


def load_loan(
    session: Session, actor: Actor, loan_number: str, *, lock: bool = False, archived: bool = False
) -> Loan:
    """The loan with that number if actor may see it (row-locked for changes when lock).

    A loan locked for a change must not be archived, unless archived (restoring it).
    """
    if lock:
        refuse_read_only(actor, "change loans")
    number = parse_loan_number(loan_number)
    stmt = select(Loan).where(Loan.loan_number == number).options(NO_TAGS)
    if lock:
        # Every change to a loan locks its row first, so two agents paying at once allocate
        # one after the other; populate_existing drops what the session had cached.
        stmt = (
            stmt.with_for_update(of=Loan)
            .options(selectinload(Loan.installments))
            .execution_options(populate_existing=True)
        )
    loan = check_loan(actor, session.scalars(stmt).first(), number)
    if lock and not archived:
        refuse_archived(loan)
    return loan


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
