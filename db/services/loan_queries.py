"""Reading loans: by number, search, keyset-paged lists and a loan's merged history."""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Select, func, null, or_, select, true
from sqlalchemy.orm import Session, contains_eager, defaultload

from db.models import (
    Borrower,
    Contact,
    InboundMessage,
    Loan,
    LoanEvent,
    LoanEventKind,
    LoanState,
    Message,
    MessageEvent,
    MessageKind,
    Payment,
    Promise,
    Staff,
)
from db.money import format_money
from db.services import ledger
from db.services.access import Actor, check_loan, scope_loans
from db.services.errors import AccessDenied, InvalidInput
from db.services.views import LoanSummary, loan_summary
from db.validation import clean_text, name_key, parse_loan_number, parse_phone

MAX_PAGE = 100
# A list line never shows tags: skip the selectin query Borrower.tags would add per page.
NO_TAGS = defaultload(Loan.borrower).lazyload(Borrower.tags)


class LoanFilter(StrEnum):
    ALL = "all"
    ACTIVE = "active"
    OVERDUE = "overdue"
    DUE_TODAY = "due_today"
    BUCKET_1_30 = "bucket_1_30"
    BUCKET_31_60 = "bucket_31_60"
    BUCKET_61_90 = "bucket_61_90"
    BUCKET_90_PLUS = "bucket_90_plus"
    CLOSED = "closed"
    WRITTEN_OFF = "written_off"


_BUCKETS = {
    LoanFilter.BUCKET_1_30: ledger.Bucket.D1_30,
    LoanFilter.BUCKET_31_60: ledger.Bucket.D31_60,
    LoanFilter.BUCKET_61_90: ledger.Bucket.D61_90,
    LoanFilter.BUCKET_90_PLUS: ledger.Bucket.D90_PLUS,
}


@dataclass(frozen=True)
class LoanPage:
    items: list[LoanSummary]
    next_cursor: str | None
    prev_cursor: str | None
    total: int | None


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
        raise _bad_cursor()
    return parts


def load_loan(session: Session, actor: Actor, loan_number: str, *, lock: bool = False) -> Loan:
    """The loan with that number if actor may see it (row-locked for changes when lock)."""
    number = parse_loan_number(loan_number)
    stmt = select(Loan).where(Loan.loan_number == number).options(NO_TAGS)
    if lock:
        stmt = stmt.with_for_update(of=Loan)
    return check_loan(actor, session.scalars(stmt).first(), number)


# -- search -------------------------------------------------------------------------------


def _name_prefix(session: Session, prefix: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        # text_pattern_ops index: LIKE 'prefix%' is an index range scan.
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return Borrower.name_key.like(escaped + "%", escape="\\")
    return (Borrower.name_key >= prefix) & (Borrower.name_key < prefix + "\U0010ffff")


def _name_order(session: Session):
    # Byte order on both databases, so the per-branch top rows merge in Python's str order.
    if session.get_bind().dialect.name == "postgresql":
        return Borrower.name_key.collate("C")
    return Borrower.name_key


def _search_conditions(session: Session, text: str, region: str) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    with contextlib.suppress(InvalidInput):
        conditions.append(Borrower.phone == parse_phone(text, region=region))
    if any(ch.isalpha() for ch in text):
        conditions.append(_name_prefix(session, name_key(text)))
    return conditions


def search_loans(
    session: Session,
    *,
    actor: Actor,
    text: str,
    today: date,
    limit: int = 8,
    offset: int = 0,
    region: str = "IN",
) -> tuple[list[LoanSummary], bool]:
    """Loans matching a loan number, a phone or a name prefix; (items, has_more)."""
    cleaned = clean_text(text, field="search", max_len=120)
    assert cleaned is not None
    _check_page(limit, offset)
    want = offset + limit + 1
    base = select(Loan).join(Loan.borrower)
    base = base.options(contains_eager(Loan.borrower).lazyload(Borrower.tags))
    base = scope_loans(base, actor)
    found: list[Loan] = []
    with contextlib.suppress(InvalidInput):
        number = parse_loan_number(cleaned)
        found += session.scalars(base.where(Loan.loan_number == number)).all()
    others: dict[int, Loan] = {}
    for condition in _search_conditions(session, cleaned, region):
        stmt = base.where(condition).order_by(_name_order(session), Loan.id).limit(want)
        others.update((loan.id, loan) for loan in session.scalars(stmt))
    exact_ids = {loan.id for loan in found}
    rest = sorted(others.values(), key=lambda loan: (loan.borrower.name_key, loan.id))
    merged = (found + [loan for loan in rest if loan.id not in exact_ids])[offset:want]
    items = [loan_summary(loan, today=today) for loan in merged[:limit]]
    return items, len(merged) > limit


def _check_page(limit: int, offset: int = 0) -> None:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"A page holds 1 to {MAX_PAGE} loans.", code="page_size")


# -- lists --------------------------------------------------------------------------------


def _filter_conditions(filter: LoanFilter, today: date) -> list[ColumnElement[bool]]:
    active = Loan.state == LoanState.ACTIVE
    if filter is LoanFilter.ALL:
        return []
    if filter is LoanFilter.CLOSED:
        return [Loan.state == LoanState.CLOSED]
    if filter is LoanFilter.WRITTEN_OFF:
        return [Loan.state == LoanState.WRITTEN_OFF]
    if filter is LoanFilter.OVERDUE:
        return [active, Loan.next_due_date < today]
    if filter is LoanFilter.DUE_TODAY:
        return [active, Loan.next_due_date == today]
    if filter in _BUCKETS:
        earliest, latest = ledger.bucket_dates(_BUCKETS[filter], today)
        bounds = [] if earliest is None else [Loan.next_due_date >= earliest]
        return [active, Loan.next_due_date <= latest, *bounds]
    return [active]


def _day_start(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _period_conditions(column, start: date | None, end: date | None, tz: tzinfo) -> list:
    out = []
    if start is not None:
        out.append(column >= _day_start(start, tz))
    if end is not None:
        out.append(column < _day_start(end + timedelta(days=1), tz))
    return out


def _after(due: date | None, loan_id: int) -> ColumnElement[bool]:
    """Rows after (due, loan_id) in the order next_due_date NULLS LAST, id."""
    if due is None:
        return Loan.next_due_date.is_(None) & (Loan.id > loan_id)
    return or_(
        Loan.next_due_date > due,
        (Loan.next_due_date == due) & (Loan.id > loan_id),
        Loan.next_due_date.is_(None),
    )


def _before(due: date | None, loan_id: int) -> ColumnElement[bool]:
    """Rows before (due, loan_id) in the same order."""
    if due is None:
        return or_(Loan.next_due_date.is_not(None), Loan.id < loan_id)
    return Loan.next_due_date.is_not(None) & or_(
        Loan.next_due_date < due, (Loan.next_due_date == due) & (Loan.id < loan_id)
    )


def _key(loan: LoanSummary) -> str:
    return encode_cursor(loan.next_due_date, loan.id)


def _bad_cursor() -> InvalidInput:
    return InvalidInput("That page link is no longer valid; start again.", code="cursor")


def _decode_key(token: str) -> tuple[date | None, int]:
    due, loan_id = decode_cursor(token, 2)
    try:
        return (date.fromisoformat(due) if due else None), int(loan_id)
    except ValueError:
        raise _bad_cursor() from None


def _scoped(actor: Actor, agent_id: int | None) -> list[ColumnElement[bool]]:
    if actor.sees_all_loans:
        return [] if agent_id is None else [Loan.agent_id == agent_id]
    if agent_id not in (None, actor.staff_id):
        raise AccessDenied("Only a manager may list another agent's loans.", code="role")
    return [Loan.agent_id == actor.staff_id]


def list_loans(
    session: Session,
    *,
    actor: Actor,
    today: date,
    filter: LoanFilter = LoanFilter.ACTIVE,
    agent_id: int | None = None,
    created_from: date | None = None,
    created_to: date | None = None,
    updated_from: date | None = None,
    updated_to: date | None = None,
    after: str | None = None,
    before: str | None = None,
    limit: int = 10,
    with_total: bool = False,
    tz: tzinfo = UTC,
) -> LoanPage:
    """One keyset page of loans ordered by next due date (none last), then id."""
    _check_page(limit)
    if after and before:
        raise InvalidInput("Give either after or before, not both.", code="cursor")
    where = [
        *_scoped(actor, agent_id),
        *_filter_conditions(LoanFilter(filter), today),
        *_period_conditions(Loan.created_at, created_from, created_to, tz),
        *_period_conditions(Loan.updated_at, updated_from, updated_to, tz),
    ]
    total = None
    if with_total:
        total = session.scalar(select(func.count()).select_from(Loan).where(*where))
    if before:
        return _page_backward(session, where, _decode_key(before), limit, today, total)
    return _page_forward(session, where, after, limit, today, total)


def _page_forward(session, where, after, limit, today, total) -> LoanPage:
    stmt: Select = select(Loan).where(*where).options(NO_TAGS)
    if after:
        stmt = stmt.where(_after(*_decode_key(after)))
    stmt = stmt.order_by(Loan.next_due_date.asc().nulls_last(), Loan.id.asc()).limit(limit + 1)
    loans = [loan_summary(loan, today=today) for loan in session.scalars(stmt)]
    items = loans[:limit]
    next_cursor = _key(items[-1]) if len(loans) > limit else None
    prev_cursor = _key(items[0]) if after and items else None
    return LoanPage(items, next_cursor, prev_cursor, total)


def _page_backward(session, where, key, limit, today, total) -> LoanPage:
    stmt = (
        select(Loan)
        .options(NO_TAGS)
        .where(*where, _before(*key))
        .order_by(Loan.next_due_date.desc().nulls_first(), Loan.id.desc())
        .limit(limit + 1)
    )
    loans = [loan_summary(loan, today=today) for loan in session.scalars(stmt)]
    items = list(reversed(loans[:limit]))
    prev_cursor = _key(items[0]) if len(loans) > limit else None
    next_cursor = _key(items[-1]) if items else None
    return LoanPage(items, next_cursor, prev_cursor, total)


# -- history ------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class HistoryPage:
    """Newest first; pass next_cursor as before= for the older page."""

    items: list[HistoryItem]
    next_cursor: str | None


def _older(at_col, id_col, source: _Source, cursor) -> ColumnElement[bool]:
    """Rows after the cursor in the order (at, source, id) descending."""
    if cursor is None:
        return true()
    at, c_source, c_id = cursor
    if source < c_source:
        return at_col <= at
    if source == c_source:
        return or_(at_col < at, (at_col == at) & (id_col < c_id))
    return at_col < at


@dataclass(frozen=True)
class _Feed:
    """One table's contribution: its statement selects (row, staff name, extra)."""

    source: _Source
    stmt: Select
    at: Any
    id: Any
    line: Callable[[Any, Any, Callable[[Decimal], str]], tuple[str, str]]


def _event_line(e: LoanEvent, _extra, _money) -> tuple[str, str]:
    text = e.kind.value.replace("_", " ").capitalize()
    if e.kind is LoanEventKind.EDITED and e.after:
        before = e.before or {}
        text += ": " + "; ".join(
            f"{k.replace('_', ' ')} {before.get(k) or '-'} → {v or '-'}" for k, v in e.after.items()
        )
    elif e.kind is LoanEventKind.REASSIGNED and e.after:
        text += f" to {e.after.get('agent')}"
    return e.kind.value, text + (f" ({e.note})" if e.note else "")


def _payment_line(p: Payment, _extra, money) -> tuple[str, str]:
    if p.amount < 0:
        return "payment_reversed", f"Payment reversed: {money(-p.amount)}"
    return "payment", f"Payment {money(p.amount)} ({p.method.value})"


def _promise_line(p: Promise, _extra, money) -> tuple[str, str]:
    return "promise", f"Promise of {money(p.amount)} by {p.promised_date:%d %b %Y} ({p.state})"


def _contact_line(c: Contact, _extra, _money) -> tuple[str, str]:
    text = f"{c.channel.value.capitalize()}: {c.outcome.value.replace('_', ' ')}"
    return "contact", text + (f" ({c.note})" if c.note else "")


def _message_line(m: MessageEvent, kind: MessageKind, _money) -> tuple[str, str]:
    code = f" (error {m.error_code})" if m.error_code else ""
    return "sms", f"SMS {kind.value} {m.status}{code}"


def _inbound_line(i: InboundMessage, _extra, _money) -> tuple[str, str]:
    return "inbound_sms", f"Borrower wrote: {i.body[:200]}"


def _feeds(loan_id: int) -> list[_Feed]:
    def by_staff(model, staff_col):
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
        _Feed(_Source.PAYMENT, by_staff(Payment, Payment.recorded_by_id)
              .where(Payment.loan_id == loan_id), Payment.paid_at, Payment.id, _payment_line),
        _Feed(_Source.PROMISE, by_staff(Promise, Promise.made_by_id)
              .where(Promise.loan_id == loan_id), Promise.created_at, Promise.id, _promise_line),
        _Feed(_Source.CONTACT, by_staff(Contact, Contact.staff_id)
              .where(Contact.loan_id == loan_id), Contact.created_at, Contact.id, _contact_line),
        _Feed(_Source.MESSAGE, messages, MessageEvent.created_at, MessageEvent.id, _message_line),
        _Feed(_Source.INBOUND, inbound, InboundMessage.received_at, InboundMessage.id,
              _inbound_line),
    ]


def _decode_history(token: str) -> tuple[datetime, _Source, int]:
    at, source, row_id = decode_cursor(token, 3)
    try:
        return datetime.fromisoformat(at), _Source(source), int(row_id)
    except ValueError:
        raise _bad_cursor() from None


def loan_history(
    session: Session, *, actor: Actor, loan_number: str, limit: int = 10,
    before: str | None = None, currency: str = "INR",
) -> HistoryPage:
    """Everything that happened to a loan, newest first, one keyset page at a time."""
    _check_page(limit)
    loan = load_loan(session, actor, loan_number)
    cursor = _decode_history(before) if before else None
    money = partial(format_money, currency=currency)
    rows = []
    for feed in _feeds(loan.id):
        stmt = feed.stmt.where(_older(feed.at, feed.id, feed.source, cursor))
        stmt = stmt.order_by(feed.at.desc(), feed.id.desc()).limit(limit + 1)
        for obj, staff_name, extra in session.execute(stmt):
            at = getattr(obj, feed.at.key)
            kind, summary = feed.line(obj, extra, money)
            rows.append((at, feed.source, obj.id, HistoryItem(at, kind, summary, staff_name)))
    rows.sort(key=lambda r: r[:3], reverse=True)
    page = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor(page[-1][0].isoformat(), *page[-1][1:3]) if more else None
    return HistoryPage([r[3] for r in page], next_cursor)
