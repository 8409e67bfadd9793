"""Keyword answers per number: a few an hour, so a thousand HELPs cost a few replies.

The inbound row of every message is kept either way; its reply_state says whether it
was answered ("queued") or not ("rate_limited"). Only answered rows count toward the
limit, so a flood costs nothing once over it, and answers resume an hour after the
last ones went out. Two messages arriving at the same instant may both be answered: the
limit is about cost, not an exact count.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db import clock
from db.models import InboundMessage

QUEUED, RATE_LIMITED = "queued", "rate_limited"
WINDOW = timedelta(hours=1)


def over_limit(session: Session, *, phone: str, per_hour: int) -> bool:
    """True when this number has had per_hour answers in the last hour already."""
    since = clock.utcnow() - WINDOW
    answered = session.scalar(
        select(func.count())
        .select_from(InboundMessage)
        .where(
            InboundMessage.from_phone == phone,
            InboundMessage.reply_state == QUEUED,
            InboundMessage.received_at >= since,
        )
    )
    return (answered or 0) >= per_hour


def record(session: Session, *, inbound_id: int, state: str) -> None:
    """Note on the inbound row whether its keyword was answered."""
    session.execute(
        update(InboundMessage)
        .where(InboundMessage.id == inbound_id)
        .values(reply_state=state)
        .execution_options(synchronize_session=False)
    )
