"""The portfolio figures (db/services/reports.py) of the loans the caller may see."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Db, Reader, Wired
from api.schemas import AgentLineOut, BucketOut, DayOut, PortfolioOut
from db.services.reports import collections_by_day, portfolio

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("/portfolio", response_model=PortfolioOut, summary="Portfolio figures")
def portfolio_report(
    who: Reader,
    session: Db,
    wired: Wired,
    agent_id: int | None = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> PortfolioOut:
    """Active book, overdue buckets, collections; an agent's key sees their own portfolio."""
    today, tz = wired.today(), wired.settings.tz
    # The service keeps an agent to their own loans whatever agent_id says.
    book = portfolio(session, actor=who.actor, today=today, tz=tz, agent_id=agent_id)
    days_collected = collections_by_day(
        session, actor=who.actor, today=today, tz=tz, days=days, agent_id=agent_id
    )
    return PortfolioOut(
        loans_active=book.loans_active,
        borrowed=book.borrowed,
        repaid=book.repaid,
        outstanding=book.outstanding,
        overdue_loans=book.overdue_loans,
        overdue_by_bucket=[
            BucketOut(bucket=label, loans=n, outstanding=owed)
            for label, (n, owed) in book.overdue_by_bucket.items()
        ],
        collected_today=book.collected_today,
        collected_month=book.collected_month,
        per_agent=[AgentLineOut.model_validate(line) for line in book.per_agent],
        collections_by_day=[DayOut(day=d, collected=c) for d, c in days_collected],
    )
