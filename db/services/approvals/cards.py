"""What the bot's approval job sends (bot/jobs_approvals.py), and what it has sent.

submit() queued one card row per approver. The job sends each unsent card of a pending
request to its approver once they have a live session (held until they log in, as replies
are), and records the chat and message ids; once the request is decided, each sent card is
edited to say who decided (unsent ones are dropped), and the requester is told the outcome.
A request pending longer than APPROVAL_REMIND_HOURS is reminded once to its approvers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db import clock
from db.models import (
    ApprovalCard,
    ApprovalRequest,
    ApprovalState,
    Installment,
    Loan,
    Promise,
    PromiseState,
    Staff,
)
from db.services.approvals.requests import ApprovalView, get_request
from db.services.sms.relays import live_staff


@dataclass(frozen=True)
class TrackRecord:
    """The agent's record an approver weighs: loans, installments paid on time, promises."""

    agent_name: str
    loans: int
    on_time_percent: int | None  # None: nothing fell due yet
    broken_promises: int


@dataclass(frozen=True)
class CardToSend:
    card_id: int
    chat_id: int
    approval: ApprovalView
    outstanding: Decimal | None
    record: TrackRecord | None


@dataclass(frozen=True)
class CardToSettle:
    card_id: int
    chat_id: int
    message_id: int
    approval: ApprovalView


@dataclass(frozen=True)
class Outcome:
    chat_id: int
    approval: ApprovalView


def track_record(session: Session, *, agent_id: int, today: date) -> TrackRecord:
    """agent_id's loans, the share of their installments due so far paid by the due date,
    and the promises broken on their loans."""
    name = session.scalar(select(Staff.name).where(Staff.id == agent_id)) or ""
    loans = session.scalar(select(func.count(Loan.id)).where(Loan.agent_id == agent_id)) or 0
    due = session.execute(
        select(Installment.due_date, Installment.paid_at)
        .join(Loan, Loan.id == Installment.loan_id)
        .where(Loan.agent_id == agent_id, Installment.due_date <= today)
    ).all()
    on_time = sum(1 for d, paid in due if paid is not None and paid.date() <= d)
    broken = session.scalar(
        select(func.count(Promise.id))
        .join(Loan, Loan.id == Promise.loan_id)
        .where(Loan.agent_id == agent_id, Promise.state == PromiseState.BROKEN)
    )
    percent = round(100 * on_time / len(due)) if due else None
    return TrackRecord(name, loans, percent, broken or 0)


def _live_ids(session: Session, idle_minutes: int, max_hours: int) -> dict[int, int]:
    """staff id -> chat id of everyone who may be written to now."""
    live = live_staff(session, idle_minutes=idle_minutes, max_hours=max_hours)
    return {s.id: s.telegram_chat_id for s in live if s.telegram_chat_id is not None}


def cards_to_send(
    session: Session, *, idle_minutes: int, max_hours: int, today: date, limit: int = 50
) -> list[CardToSend]:
    """Unsent cards of pending requests whose approver is logged in, oldest first."""
    live = _live_ids(session, idle_minutes, max_hours)
    if not live:
        return []
    rows = session.execute(
        select(ApprovalCard.id, ApprovalCard.staff_id, ApprovalRequest.id)
        .join(ApprovalRequest, ApprovalRequest.id == ApprovalCard.approval_id)
        .where(
            ApprovalCard.sent_at.is_(None),
            ApprovalCard.settled_at.is_(None),
            ApprovalRequest.state == ApprovalState.PENDING,
            ApprovalCard.staff_id.in_(list(live)),
        )
        .order_by(ApprovalCard.id)
        .limit(limit)
    ).all()
    return [
        _card(session, card_id, live[staff_id], approval_id, today)
        for card_id, staff_id, approval_id in rows
    ]


def _card(
    session: Session, card_id: int, chat_id: int, approval_id: int, today: date
) -> CardToSend:
    view = get_request(session, approval_id=approval_id)
    loan = session.get(Loan, view.loan_id) if view.loan_id is not None else None
    agent_id = loan.agent_id if loan is not None and loan.agent_id else view.requested_by_id
    record = track_record(session, agent_id=agent_id, today=today)
    return CardToSend(card_id, chat_id, view, loan.outstanding if loan else None, record)


def mark_card_sent(session: Session, *, card_id: int, chat_id: int, message_id: int) -> None:
    session.execute(
        update(ApprovalCard)
        .where(ApprovalCard.id == card_id)
        .values(chat_id=chat_id, message_id=message_id, sent_at=clock.utcnow())
    )


def cards_to_settle(session: Session, *, limit: int = 50) -> list[CardToSettle]:
    """Sent cards of decided (or withdrawn) requests, not yet edited; unsent ones are dropped."""
    decided = select(ApprovalRequest.id).where(ApprovalRequest.state != ApprovalState.PENDING)
    session.execute(
        update(ApprovalCard)
        .where(
            ApprovalCard.sent_at.is_(None),
            ApprovalCard.settled_at.is_(None),
            ApprovalCard.approval_id.in_(decided),
        )
        .values(settled_at=clock.utcnow())
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(
            ApprovalCard.id, ApprovalCard.chat_id, ApprovalCard.message_id, ApprovalCard.approval_id
        )
        .where(
            ApprovalCard.sent_at.is_not(None),
            ApprovalCard.settled_at.is_(None),
            ApprovalCard.approval_id.in_(decided),
        )
        .order_by(ApprovalCard.id)
        .limit(limit)
    ).all()
    return [
        CardToSettle(card_id, chat_id, message_id, get_request(session, approval_id=approval_id))
        for card_id, chat_id, message_id, approval_id in rows
    ]


def mark_card_settled(session: Session, *, card_id: int) -> None:
    session.execute(
        update(ApprovalCard).where(ApprovalCard.id == card_id).values(settled_at=clock.utcnow())
    )


def outcomes_to_tell(session: Session, *, idle_minutes: int, max_hours: int) -> list[Outcome]:
    """Approved or rejected requests whose requester is logged in and not yet told."""
    live = _live_ids(session, idle_minutes, max_hours)
    if not live:
        return []
    ids = session.execute(
        select(ApprovalRequest.id, ApprovalRequest.requested_by_id).where(
            ApprovalRequest.state.in_([ApprovalState.APPROVED, ApprovalState.REJECTED]),
            ApprovalRequest.outcome_told_at.is_(None),
            ApprovalRequest.requested_by_id.in_(list(live)),
        )
    ).all()
    return [Outcome(live[by], get_request(session, approval_id=i)) for i, by in ids]


def mark_told(session: Session, *, approval_id: int) -> None:
    session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id == approval_id)
        .values(outcome_told_at=clock.utcnow())
    )


def due_reminders(
    session: Session, *, hours: int, idle_minutes: int, max_hours: int, now: datetime | None = None
) -> list[tuple[ApprovalView, list[int]]]:
    """Pending requests older than hours, never reminded: each with its live approvers' chats.
    They are marked reminded here (once, even if nobody is logged in to read it)."""
    now = now or clock.utcnow()
    rows = list(
        session.scalars(
            select(ApprovalRequest.id).where(
                ApprovalRequest.state == ApprovalState.PENDING,
                ApprovalRequest.reminded_at.is_(None),
                ApprovalRequest.created_at <= now - timedelta(hours=hours),
            )
        )
    )
    if not rows:
        return []
    live = _live_ids(session, idle_minutes, max_hours)
    out = []
    for approval_id in rows:
        approvers = session.scalars(
            select(ApprovalCard.staff_id).where(ApprovalCard.approval_id == approval_id)
        )
        chats = [live[s] for s in approvers if s in live]
        out.append((get_request(session, approval_id=approval_id), chats))
    session.execute(
        update(ApprovalRequest)
        .where(ApprovalRequest.id.in_(rows))
        .values(reminded_at=now)
        .execution_options(synchronize_session=False)
    )
    return out
