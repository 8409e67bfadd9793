"""A loan's history: its events, payments, promises, contacts and SMS merged, newest first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Select, null, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from db import agency as agencies
from db.agency import Agency
from db.models import (
    Base,
    Contact,
    InboundMessage,
    LoanEvent,
    LoanEventKind,
    Message,
    MessageEvent,
    MessageKind,
    Payment,
    Promise,
    Staff,
)
from db.money import format_money
from db.services.access import Actor
from db.services.loans.guards import find_loan
from db.services.paging import bad_cursor, check_page, decode_cursor, encode_cursor


class _Source(StrEnum):
    """Where a history line comes from; part of the cursor, so pages never overlap."""

    CONTACT = "contact"
    EVENT = "event"
    INBOUND = "inbound"
    MESSAGE = "message"
    PAYMENT = "payment"
    PROMISE = "promise"


# Their own rows (payment, promise, contact, inbound) tell more than the event row does.
_COVERED = (
    LoanEventKind.PAYMENT,
    LoanEventKind.PAYMENT_REVERSED,
    LoanEventKind.PROMISE,
    LoanEventKind.CONTACT,
    LoanEventKind.INBOUND_SMS,
)


@dataclass(frozen=True)
class HistoryItem:
    at: datetime
    kind: str
    summary: str
    staff_name: str | None
    # before= for the lines older than this one: a caller showing fewer lines than it got
    # (a page too long for a message) goes on from the last line it showed.
    cursor: str = ""


@dataclass(frozen=True)
class HistoryPage:
    """Newest first; pass next_cursor as before= for the older page."""

    items: list[HistoryItem]
    next_cursor: str | None


def _older(
    at_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[int],
    source: _Source,
    cursor: tuple[datetime, _Source, int] | None,
) -> ColumnElement[bool]:
    """Rows after the cursor in the order (at, source, id) descending."""
    if cursor is None:
        return true()
    at, c_source, c_id = cursor
    if source < c_source:
        return at_col <= at
    if source == c_source:
        return or_(at_col < at, (at_col == at) & (id_col < c_id))
    return at_col < at


_Money = Callable[[Decimal], str]


@dataclass(frozen=True)
class _Feed:
    """One table's contribution: its statement selects (row, staff name, extra)."""

    source: _Source
    stmt: Select[Any]
    at: InstrumentedAttribute[datetime]
    id: InstrumentedAttribute[int]
    line: Callable[[Any, Any, _Money], tuple[str, str]]


def _event_line(e: LoanEvent, _extra: None, _money: _Money) -> tuple[str, str]:
    text = e.kind.value.replace("_", " ").capitalize()
    if e.kind is LoanEventKind.EDITED and e.after:
        before = e.before or {}
        text += ": " + "; ".join(
            f"{k.replace('_', ' ')} {before.get(k) or '-'} → {v or '-'}" for k, v in e.after.items()
        )
    elif e.kind is LoanEventKind.REASSIGNED and e.after:
        text += f" to {e.after.get('agent')}"
    return e.kind.value, text + (f" ({e.note})" if e.note else "")


def _payment_line(p: Payment, _extra: None, money: _Money) -> tuple[str, str]:
    if p.amount < 0:
        return "payment_reversed", f"Payment reversed: {money(-p.amount)}"
    return "payment", f"Payment {money(p.amount)} ({p.method.value})"


def _promise_line(p: Promise, _extra: None, money: _Money) -> tuple[str, str]:
    return "promise", f"Promise of {money(p.amount)} by {p.promised_date:%d %b %Y} ({p.state})"


def _contact_line(c: Contact, _extra: None, _money: _Money) -> tuple[str, str]:
    text = f"{c.channel.value.capitalize()}: {c.outcome.value.replace('_', ' ')}"
    return "contact", text + (f" ({c.note})" if c.note else "")


def _message_line(m: MessageEvent, kind: MessageKind, _money: _Money) -> tuple[str, str]:
    code = f" (error {m.error_code})" if m.error_code else ""
    return "sms", f"SMS {kind.value} {m.status}{code}"


def _inbound_line(i: InboundMessage, _extra: None, _money: _Money) -> tuple[str, str]:
    return "inbound_sms", f"Borrower wrote: {i.body[:200]}"


def _feeds(loan_id: int) -> list[_Feed]:
    def by_staff(model: type[Base], staff_col: InstrumentedAttribute[int | None]) -> Select[Any]:
        return select(model, Staff.name, null()).outerjoin(Staff, Staff.id == staff_col)

    events = by_staff(LoanEvent, LoanEvent.staff_id).where(
        LoanEvent.loan_id == loan_id, LoanEvent.kind.not_in(_COVERED)
    )
    messages = (
        select(MessageEvent, null(), Message.kind)
        .join(Message, Message.id == MessageEvent.message_id)
        .where(Message.loan_id == loan_id)
    )
    inbound = select(InboundMessage, null(), null()).where(InboundMessage.loan_id == loan_id)
    return [
        _Feed(_Source.EVENT, events, LoanEvent.created_at, LoanEvent.id, _event_line),
        _Feed(
            _Source.PAYMENT,
            by_staff(Payment, Payment.recorded_by_id).where(Payment.loan_id == loan_id),
            Payment.paid_at,
            Payment.id,
            _payment_line,
        ),
        _Feed(
            _Source.PROMISE,
            by_staff(Promise, Promise.made_by_id).where(Promise.loan_id == loan_id),
            Promise.created_at,
            Promise.id,
            _promise_line,
        ),
        _Feed(
            _Source.CONTACT,
            by_staff(Contact, Contact.staff_id).where(Contact.loan_id == loan_id),
            Contact.created_at,
            Contact.id,
            _contact_line,
        ),
        _Feed(_Source.MESSAGE, messages, MessageEvent.created_at, MessageEvent.id, _message_line),
        _Feed(
            _Source.INBOUND, inbound, InboundMessage.received_at, InboundMessage.id, _inbound_line
        ),
    ]


def _decode_history(token: str) -> tuple[datetime, _Source, int]:
    at, source, row_id = decode_cursor(token, 3)
    try:
        return datetime.fromisoformat(at), _Source(source), int(row_id)
    except ValueError:
        raise bad_cursor() from None


def loan_history(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    limit: int = 10,
    before: str | None = None,
    agency: Agency = agencies.DEFAULT,
) -> HistoryPage:
    """Everything that happened to a loan, newest first, one keyset page at a time."""
    check_page(limit)
    loan = find_loan(session, actor=actor, loan_number=loan_number)
    cursor = _decode_history(before) if before else None
    money = partial(format_money, agency=agency)
    rows = []
    for feed in _feeds(loan.id):
        stmt = feed.stmt.where(_older(feed.at, feed.id, feed.source, cursor))
        stmt = stmt.order_by(feed.at.desc(), feed.id.desc()).limit(limit + 1)
        for obj, staff_name, extra in session.execute(stmt):
            at = getattr(obj, feed.at.key)
            kind, summary = feed.line(obj, extra, money)
            token = encode_cursor(at.isoformat(), feed.source, obj.id)
            rows.append(
                (at, feed.source, obj.id, HistoryItem(at, kind, summary, staff_name, token))
            )
    rows.sort(key=lambda r: r[:3], reverse=True)
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1][0].isoformat(), *page[-1][1:3]) if more else None
    return HistoryPage([r[3] for r in page], next_cursor)
