"""Every queued SMS still true when it leaves.

A message about a loan records the loan's version its text was written against
(message.loan_version, stamped by outbox.queue_message, the planner and broadcasts). When
a loan or borrower changes, the service making the change calls withdraw_for_loan /
withdraw_for_borrower in its own transaction: queued messages the change makes untrue
are CANCELED with an event saying why; those it leaves true are restamped with the new
version. The dispatcher re-checks just before sending (untrue_in) and cancels whatever
still disagrees with its loan, borrower or broadcast, so a change no service withdrew
for (or one racing a claim) makes a message late at worst, never false.

What a change makes untrue:
- reminders state the amount, due date and loan: any withdrawing change cancels them;
- broadcasts for a loan: cancelled when the loan ends (paid off, closed, written off,
  deleted), else only when their template states something about the loan;
- a dispute or hardship pause: reminders and loan-fact broadcasts are withdrawn, and a
  reminder claimed while one is open is canceled at send time;
- payment notices and keyword replies are receipts of something that happened: kept,
  unless the loan is deleted or (notices) a payment is reversed.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, exists, or_, select, update
from sqlalchemy.orm import Session

from db import clock
from db.models import (
    Borrower,
    Broadcast,
    BroadcastState,
    HoldKind,
    Loan,
    LoanState,
    Message,
    MessageKind,
    MessageStatus,
)
from db.services.access import hold_kind
from db.services.sms.outbox import EventSource, event, record_events
from db.session import rows_matched

S = MessageStatus
K = MessageKind


class WithdrawReason(StrEnum):
    """Why a queued message was withdrawn (message_event.detail, message.error_message)."""

    PAID_OFF = "paid_off"
    CLOSED = "closed"
    WRITTEN_OFF = "written_off"
    DELETED = "deleted"
    ARCHIVED = "archived"
    AMOUNT_CHANGED = "amount_changed"
    PAYMENT_REVERSED = "payment_reversed"
    DUE_DATE_CHANGED = "due_date_changed"
    PHONE_CHANGED = "phone_changed"
    OPTED_OUT = "opted_out"
    LOAN_CHANGED = "loan_changed"  # the dispatcher's catch-all: the version moved on
    BROADCAST_CANCELED = "broadcast_canceled"
    DISPUTED = "disputed"  # a dispute opened: nothing asks for money until it is resolved
    HARDSHIP = "hardship"  # a hardship pause: nothing asks for money until its end


R = WithdrawReason
# The loan is over: nothing asking for money about it is true any more.
_ENDS_LOAN = frozenset({R.PAID_OFF, R.CLOSED, R.WRITTEN_OFF, R.DELETED, R.ARCHIVED})
# The loan left the book: even receipts and replies about it are withdrawn.
_GONE = frozenset({R.DELETED, R.ARCHIVED})
# Placeholders that put something about the loan into a broadcast's text.
_LOAN_FIELDS = ("{amount_due}", "{outstanding}", "{due_date}", "{loan_number}")
_STATE_REASON = {LoanState.CLOSED: R.CLOSED, LoanState.WRITTEN_OFF: R.WRITTEN_OFF}
_HOLD_REASON = {HoldKind.DISPUTE: R.DISPUTED, HoldKind.HARDSHIP: R.HARDSHIP}


def _detail(reason: WithdrawReason) -> str:
    return f"withdrawn: {reason.value}"


def _states_loan_facts() -> ColumnElement[bool]:
    """The message's broadcast template mentions an amount, date or the loan number."""
    mentions = or_(*(Broadcast.template.contains(field) for field in _LOAN_FIELDS))
    return exists().where(Broadcast.id == Message.broadcast_id, mentions)


def _untrue_kinds(reason: WithdrawReason) -> ColumnElement[bool]:
    """Which of a loan's messages a change for reason makes untrue (module docstring)."""
    kinds = [Message.kind == K.REMINDER]
    if reason in _ENDS_LOAN:
        kinds.append(Message.kind == K.BROADCAST)
    else:
        kinds.append(and_(Message.kind == K.BROADCAST, _states_loan_facts()))
    if reason in _GONE or reason is R.PAYMENT_REVERSED:
        kinds.append(Message.kind == K.NOTICE)
    if reason in _GONE:
        kinds.append(Message.kind == K.REPLY)
    return or_(*kinds)


def withdraw_where(
    session: Session,
    *conditions: ColumnElement[bool],
    reason: WithdrawReason,
    source: str = EventSource.OUTBOX,
) -> list[int]:
    """CANCEL every QUEUED message matching conditions, each with its event; their ids."""
    now = clock.utcnow()
    ids = list(
        session.scalars(
            update(Message)
            .where(Message.status == S.QUEUED, *conditions)
            .values(
                status=S.CANCELED, error_message=_detail(reason), claimed_by=None, updated_at=now
            )
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        )
    )
    record_events(session, ids, S.CANCELED, source, _detail(reason))
    return ids


def restamp_for_loan(session: Session, *, loan: Loan) -> int:
    """The loan's queued messages are still true at its new version: say so."""
    session.flush()  # the loan's new version is what the messages are stamped with
    result = session.execute(
        update(Message)
        .where(Message.loan_id == loan.id, Message.status == S.QUEUED)
        .values(loan_version=loan.version)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)


def withdraw_for_loan(session: Session, *, loan: Loan, reason: WithdrawReason) -> list[int]:
    """Withdraw the loan's queued messages reason makes untrue; restamp the rest."""
    ids = withdraw_where(session, Message.loan_id == loan.id, _untrue_kinds(reason), reason=reason)
    if reason not in _GONE:
        restamp_for_loan(session, loan=loan)
    return ids


def withdraw_for_borrower(
    session: Session, *, borrower: Borrower, reason: WithdrawReason
) -> list[int]:
    """Phone change: everything queued to another number; opt-out: everything queued."""
    session.flush()
    cond = [Message.borrower_id == borrower.id]
    if reason is R.PHONE_CHANGED:
        cond.append(Message.to_phone != borrower.phone)
    return withdraw_where(session, *cond, reason=reason)


# --- at send time ---------------------------------------------------------------------


def _reason(row: Row[Any]) -> WithdrawReason | None:
    """Why a claimed message would be untrue now (row: message, loan, borrower, broadcast)."""
    kind, to, loan_id, stamped, state, current, phone, b_state, archived, held = row[1:]
    if b_state == BroadcastState.CANCELED:
        return R.BROADCAST_CANCELED
    if phone is not None and phone != to:
        return R.PHONE_CHANGED
    if loan_id is None:
        # Stamped with a version but its loan is gone (loan_id set NULL on delete).
        return R.DELETED if stamped is not None else None
    if state is None:
        return R.DELETED
    if archived is not None:
        return R.ARCHIVED
    if state != LoanState.ACTIVE and kind in (K.REMINDER, K.BROADCAST):
        return _STATE_REASON.get(LoanState(state), R.LOAN_CHANGED)
    if held is not None and kind == K.REMINDER:
        return _HOLD_REASON[HoldKind(held)]
    if stamped is not None and stamped != current:
        return R.LOAN_CHANGED
    return None


def untrue_in(session: Session, message_ids: Iterable[int]) -> dict[int, WithdrawReason]:
    """Of these (claimed) messages, those no longer true, with why: one query for all."""
    ids = list(message_ids)
    if not ids:
        return {}
    stmt = (
        select(
            Message.id,
            Message.kind,
            Message.to_phone,
            Message.loan_id,
            Message.loan_version,
            Loan.state,
            Loan.version,
            Borrower.phone,
            Broadcast.state,
            Loan.archived_at,
            hold_kind(Message.loan_id, clock.utcnow().date()),
        )
        .outerjoin(Loan, Loan.id == Message.loan_id)
        .outerjoin(Borrower, Borrower.id == Message.borrower_id)
        .outerjoin(Broadcast, Broadcast.id == Message.broadcast_id)
        .where(Message.id.in_(ids))
    )
    found = {row[0]: _reason(row) for row in session.execute(stmt)}
    return {i: r for i, r in found.items() if r is not None}


def cancel_claimed(
    session: Session,
    *,
    message_id: int,
    reason: WithdrawReason,
    source: str = EventSource.WORKER,
) -> bool:
    """CANCEL a claimed (or queued) message instead of sending it; False if it moved on."""
    stmt = select(Message).where(Message.id == message_id).with_for_update()
    m = session.scalars(stmt.execution_options(populate_existing=True)).one_or_none()
    if m is None or m.status not in (S.SENDING, S.QUEUED):
        return False
    m.status, m.error_message, m.claimed_by = S.CANCELED, _detail(reason), None
    m.updated_at = clock.utcnow()
    event(session, m.id, S.CANCELED, source, _detail(reason))
    return True
