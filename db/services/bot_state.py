"""The bot's own state in the database (table bot_state): its conversations and its user,
chat and bot data, as JSON documents by (namespace, key).

bot/persistence.py decides the namespaces and keeps every document JSON; one bot process
writes them, so a plain merge is enough (no lock, no conflict handling).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.models import BotState


def read_state(session: Session, *, namespace: str) -> dict[str, Any]:
    """Every document of the namespace, by key."""
    rows = session.execute(
        select(BotState.key, BotState.data).where(BotState.namespace == namespace)
    ).all()
    return {key: data for key, data in rows}


def write_state(session: Session, *, namespace: str, key: str, data: Any | None) -> None:
    """Store one document (replacing the stored one); None deletes it."""
    if data is None:
        session.execute(
            delete(BotState).where(BotState.namespace == namespace, BotState.key == key)
        )
    else:
        session.merge(BotState(namespace=namespace, key=key, data=data))
