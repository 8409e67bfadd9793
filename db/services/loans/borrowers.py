"""Reading borrowers in the actor's scope (access.scope_borrowers): one, or a keyset page."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session, aliased

from db.models import Borrower, Loan
from db.services.access import Actor, scope_borrowers
from db.services.errors import InvalidInput, NotFound
from db.services.loans.snapshots import BorrowerView
from db.services.paging import check_page
from db.validation import clean_text, name_key, parse_phone


@dataclass(frozen=True)
class BorrowerPage:
    items: list[BorrowerView]
    next_after: int | None  # the id to pass as after_id for the next page


def _views(session: Session, stmt: Select[tuple[Borrower]]) -> list[BorrowerView]:
    # A correlated count (not a join): the scope's EXISTS over Loan must stay correlated.
    held = aliased(Loan)
    loans = select(func.count(held.id)).where(held.borrower_id == Borrower.id).scalar_subquery()
    counted = stmt.add_columns(loans)
    return [
        BorrowerView(b.id, b.name, b.phone, b.address, b.opted_out_at is not None, loans)
        for b, loans in session.execute(counted)
    ]


def get_borrower(session: Session, *, actor: Actor, borrower_id: int) -> BorrowerView:
    """A borrower actor may see; the same NotFound for one that is missing or out of scope."""
    stmt = scope_borrowers(select(Borrower).where(Borrower.id == borrower_id), actor)
    found = _views(session, stmt)
    if not found:
        raise NotFound(f"No borrower {borrower_id} found.", code="borrower_not_found")
    return found[0]


def _matching(text: str, region: str) -> list[ColumnElement[bool]]:
    cleaned = clean_text(text, field="search", max_len=120)
    assert cleaned is not None
    with contextlib.suppress(InvalidInput):
        return [Borrower.phone == parse_phone(cleaned, region=region)]
    key = name_key(cleaned)
    return [Borrower.name_key >= key, Borrower.name_key < key + "\U0010ffff"]


def list_borrowers(
    session: Session,
    *,
    actor: Actor,
    text: str | None = None,
    after_id: int | None = None,
    limit: int = 20,
    region: str = "IN",
) -> BorrowerPage:
    """Borrowers actor may see by id, optionally a phone or a name prefix; keyset paged."""
    check_page(limit)
    stmt = scope_borrowers(select(Borrower), actor)
    if text:
        stmt = stmt.where(*_matching(text, region))
    if after_id is not None:
        stmt = stmt.where(Borrower.id > after_id)
    items = _views(session, stmt.order_by(Borrower.id).limit(limit + 1))
    more = len(items) > limit
    items = items[:limit]
    return BorrowerPage(items, items[-1].id if more else None)
