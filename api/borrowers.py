"""Borrowers in the caller's scope: an agent's key sees only borrowers wholly theirs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Db, Reader, Wired
from api.schemas import BorrowerOut, BorrowerPageOut
from db.services.loans.borrowers import get_borrower, list_borrowers
from db.services.paging import MAX_PAGE

router = APIRouter(prefix="/borrowers", tags=["borrowers"])


@router.get("", response_model=BorrowerPageOut, summary="List or search borrowers")
def borrowers(
    who: Reader,
    session: Db,
    wired: Wired,
    q: Annotated[str | None, Query(max_length=120, description="a phone or a name prefix")] = None,
    after: int | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
) -> BorrowerPageOut:
    page = list_borrowers(
        session,
        actor=who.actor,
        text=q,
        after_id=after,
        limit=limit,
        region=wired.settings.default_phone_region,
    )
    return BorrowerPageOut.model_validate(page)


@router.get("/{borrower_id}", response_model=BorrowerOut, summary="One borrower")
def borrower(borrower_id: int, who: Reader, session: Db) -> BorrowerOut:
    return BorrowerOut.model_validate(
        get_borrower(session, actor=who.actor, borrower_id=borrower_id)
    )
