"""Borrowers' replies on their way to staff: which loan a reply concerns, who receives it,
and holding it while that person cannot read it.

Choices:
- A reply concerns the loan of the latest SMS we sent to that number within
  REPLY_WINDOW_DAYS (it is most likely an answer to it); else the most overdue active
  loan; else the active loan due soonest; else the newest loan. Only loans of the
  borrower who owns the number now count (a number can change hands).
- It goes to that loan's CURRENT agent, never to whoever added the borrower's newest loan.
- Held: a reply waits in the database (inbound_message.relayed_at NULL) while its agent
  has no live session (expired, logged out): it is delivered when they log in (the bot's
  login calls deliver_held) or on the relay job's next run after that. Nothing is sent to
  a chat whose owner is not logged in.
- A reply whose agent is disabled (or a loan held by nobody), or that has been held for
  HOLD_HOURS, goes to a logged-in manager or admin: the one who approved the agent when
  they are logged in, else the first. With none logged in it is held until one is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session, aliased

from db import clock
from db.models import (
    Borrower,
    InboundMessage,
    Loan,
    LoanState,
    Message,
    Role,
    Staff,
    StaffSession,
    StaffState,
)
from db.services.access import LIVE_LOAN
from db.services.collection.receipts import DeniedPayment, denied_payment
from db.services.errors import InvalidInput

REPLY_WINDOW_DAYS = 14
# A reply held this long for an agent who does not log in goes to a logged-in manager:
# a borrower's "come today" should not wait for the end of someone's leave.
HOLD_HOURS = 24
_BOSSES = (Role.MANAGER, Role.ADMIN)
# A borrower's NO to a receipt (inbound.Keyword.NO): it goes to a manager, never to the
# agent who recorded the payment (collection/receipts.py).
DENIAL = "NO"
NOT_A_DENIAL = or_(InboundMessage.keyword.is_(None), InboundMessage.keyword != DENIAL)


@dataclass(frozen=True)
class RelayInfo:
    inbound_id: int
    agent_chat_id: int
    agent_id: int
    borrower_name: str
    loan_number: str
    body: str
    received_at: datetime
    denied: bool = False  # a NO to a receipt: the text shows the payment (receipts.py)


def reply_loan(
    session: Session, *, borrower_id: int, today: date, now: datetime | None = None
) -> Loan | None:
    """The loan a borrower's reply concerns (see the module's choices)."""
    since = (now or clock.utcnow()) - timedelta(days=REPLY_WINDOW_DAYS)
    answered = session.scalars(
        select(Loan)
        .join(Message, Message.loan_id == Loan.id)
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .where(
            Loan.borrower_id == borrower_id,
            LIVE_LOAN,
            Message.to_phone == Borrower.phone,
            Message.sent_at.is_not(None),
            Message.sent_at >= since,
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if answered is not None:
        return answered
    loans = session.scalars(select(Loan).where(Loan.borrower_id == borrower_id, LIVE_LOAN)).all()
    active = [ln for ln in loans if ln.state == LoanState.ACTIVE]
    overdue = [ln for ln in active if ln.next_due_date and ln.next_due_date < today]
    if overdue:
        return min(overdue, key=lambda ln: (ln.next_due_date, ln.id))
    due = [ln for ln in active if ln.next_due_date]
    if due:
        # Due soonest; on the same day the newest loan (its reminder is the fresh one).
        return min(due, key=lambda ln: (ln.next_due_date, -ln.created_at.timestamp(), -ln.id))
    pool = active or loans
    return max(pool, key=lambda ln: (ln.created_at, ln.id)) if pool else None


def live_staff(
    session: Session, *, idle_minutes: int, max_hours: int, now: datetime | None = None
) -> list[Staff]:
    """Active staff with a session that current_actor would still accept, by id."""
    now = now or clock.utcnow()
    stmt = (
        select(Staff)
        .join(StaffSession, StaffSession.staff_id == Staff.id)
        .where(
            Staff.state == StaffState.ACTIVE,
            StaffSession.ended_at.is_(None),
            StaffSession.last_seen_at >= now - timedelta(minutes=idle_minutes),
            StaffSession.started_at >= now - timedelta(hours=max_hours),
        )
        .distinct()
        .order_by(Staff.id)
    )
    return list(session.scalars(stmt))


def deliverable_relays(
    session: Session,
    *,
    limit: int = 100,
    idle_minutes: int = 120,
    max_hours: int = 168,
    staff_id: int | None = None,
) -> list[RelayInfo]:
    """Pending replies whose recipient is logged in now, oldest first (others are held).

    staff_id: only those for that staff member (what deliver_held sends at their login).
    """
    if not 1 <= limit <= 500:
        raise InvalidInput("limit must be between 1 and 500.", code="limit")
    now = clock.utcnow()
    live = {
        s.id: s
        for s in live_staff(session, idle_minutes=idle_minutes, max_hours=max_hours, now=now)
    }
    bosses = [s for s in live.values() if s.role in _BOSSES]
    if not live or (staff_id is not None and staff_id not in live):
        return []
    agent = aliased(Staff)
    reachable: list[ColumnElement[bool]] = [and_(Loan.agent_id.in_(list(live)), NOT_A_DENIAL)]
    if bosses:  # the agent is gone, or has been away too long: a manager answers
        reachable.append(
            or_(
                Loan.agent_id.is_(None),
                agent.state != StaffState.ACTIVE,
                InboundMessage.received_at < now - timedelta(hours=HOLD_HOURS),
                ~NOT_A_DENIAL,
            )
        )
    stmt = (
        select(InboundMessage, Loan.loan_number, Borrower.name, Loan.agent_id, agent.decided_by_id)
        .join(Loan, Loan.id == InboundMessage.loan_id)
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .outerjoin(agent, agent.id == Loan.agent_id)
        .where(InboundMessage.relayed_at.is_(None), or_(*reachable))
        .order_by(InboundMessage.received_at, InboundMessage.id)
        .limit(limit)
    )
    if staff_id is not None and live[staff_id].role not in _BOSSES:
        stmt = stmt.where(Loan.agent_id == staff_id, NOT_A_DENIAL)
    out = []
    for msg, number, name, agent_id, approver in session.execute(stmt):
        denied = msg.keyword == DENIAL
        # live holds active staff only, so a disabled agent is never the recipient.
        to = None if denied else live.get(agent_id)
        to = to or _boss(bosses, approver)
        if staff_id is None or to.id == staff_id:
            out.append(
                RelayInfo(
                    msg.id,
                    to.telegram_chat_id or to.telegram_user_id,
                    to.id,
                    name,
                    number,
                    msg.body,
                    msg.received_at,
                    denied,
                )
            )
    return out


def _boss(bosses: list[Staff], approver: int | None) -> Staff:
    """The agent's manager (who approved them) when logged in, else a manager, else an admin."""
    return next(
        (b for b in bosses if b.id == approver),
        next((b for b in bosses if b.role is Role.MANAGER), bosses[0]),
    )


def inbound_loan_ids(session: Session, *, inbound_ids: list[int]) -> dict[int, int]:
    """inbound message id -> the loan it is stored on (for the relay's card button)."""
    if not inbound_ids:
        return {}
    rows = session.execute(
        select(InboundMessage.id, InboundMessage.loan_id).where(
            InboundMessage.id.in_(inbound_ids), InboundMessage.loan_id.is_not(None)
        )
    )
    return {inbound_id: loan_id for inbound_id, loan_id in rows}


@dataclass(frozen=True)
class RelayBatch:
    """The replies to relay now, and the loan each is stored on (for its card button)."""

    relays: list[RelayInfo]
    loan_ids: dict[int, int]  # inbound message id -> loan id
    # inbound message id -> the payment a NO denies, with who recorded it
    denied: dict[int, DeniedPayment] = field(default_factory=dict)


def relay_batch(
    session: Session,
    *,
    limit: int,
    idle_minutes: int,
    max_hours: int,
    staff_id: int | None = None,
) -> RelayBatch:
    """deliverable_relays (only replies whose recipient is logged in) with their loans."""
    relays = deliverable_relays(
        session, limit=limit, idle_minutes=idle_minutes, max_hours=max_hours, staff_id=staff_id
    )
    loans = inbound_loan_ids(session, inbound_ids=[r.inbound_id for r in relays])
    denied = {}
    for relay in relays:
        loan_id = loans.get(relay.inbound_id)
        found = denied_payment(session, loan_id=loan_id) if relay.denied and loan_id else None
        if found is not None:
            denied[relay.inbound_id] = found
    return RelayBatch(relays, loans, denied)
