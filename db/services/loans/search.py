"""Reading loans: search and keyset-paged lists (a loan's history is in loans/history.py)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum

from sqlalchemy import ColumnElement, SQLColumnExpression, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, contains_eager

from db import clock
from db.models import Borrower, Loan, LoanState, Role
from db.services.access import LIVE_LOAN, Actor, require_role, scope_live_loans
from db.services.collection import ledger
from db.services.errors import AccessDenied, InvalidInput
from db.services.loans.guards import NO_TAGS
from db.services.loans.snapshots import LoanSummary, loan_summary
from db.services.paging import bad_cursor, check_page, decode_cursor, encode_cursor
from db.validation import clean_text, name_key, parse_loan_number, parse_phone


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
    ARCHIVED = "archived"  # admins only: every other filter leaves archived loans out


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


# -- search -------------------------------------------------------------------------------


def _name_prefix(session: Session, prefix: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        # text_pattern_ops index: LIKE 'prefix%' is an index range scan.
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return Borrower.name_key.like(escaped + "%", escape="\\")
    return (Borrower.name_key >= prefix) & (Borrower.name_key < prefix + "\U0010ffff")


def _name_order(session: Session) -> SQLColumnExpression[str]:
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
    check_page(limit, offset)
    want = offset + limit + 1
    base = select(Loan).join(Loan.borrower)
    base = base.options(contains_eager(Loan.borrower).lazyload(Borrower.tags))
    base = scope_live_loans(base, actor)
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


# -- lists --------------------------------------------------------------------------------


def _filter_conditions(filter: LoanFilter, today: date) -> list[ColumnElement[bool]]:
    if filter is LoanFilter.ARCHIVED:
        return [Loan.archived_at.is_not(None)]
    return [LIVE_LOAN, *_live_conditions(filter, today)]


def _live_conditions(filter: LoanFilter, today: date) -> list[ColumnElement[bool]]:
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


def _period_conditions(
    column: InstrumentedAttribute[datetime], start: date | None, end: date | None, tz: tzinfo
) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if start is not None:
        out.append(column >= clock.day_start(start, tz))
    if end is not None:
        out.append(column < clock.day_start(end + timedelta(days=1), tz))
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


def _decode_key(token: str) -> tuple[date | None, int]:
    due, loan_id = decode_cursor(token, 2)
    try:
        return (date.fromisoformat(due) if due else None), int(loan_id)
    except ValueError:
        raise bad_cursor() from None


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
    check_page(limit)
    if after and before:
        raise InvalidInput("Give either after or before, not both.", code="cursor")
    if filter == LoanFilter.ARCHIVED:
        require_role(actor, Role.ADMIN, "list archived loans")
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


def _page_forward(
    session: Session,
    where: list[ColumnElement[bool]],
    after: str | None,
    limit: int,
    today: date,
    total: int | None,
) -> LoanPage:
    stmt = select(Loan).where(*where).options(NO_TAGS)
    if after:
        stmt = stmt.where(_after(*_decode_key(after)))
    stmt = stmt.order_by(Loan.next_due_date.asc().nulls_last(), Loan.id.asc()).limit(limit + 1)
    loans = [loan_summary(loan, today=today) for loan in session.scalars(stmt)]
    items = loans[:limit]
    next_cursor = _key(items[-1]) if len(loans) > limit else None
    prev_cursor = _key(items[0]) if after and items else None
    return LoanPage(items, next_cursor, prev_cursor, total)


def _page_backward(
    session: Session,
    where: list[ColumnElement[bool]],
    key: tuple[date | None, int],
    limit: int,
    today: date,
    total: int | None,
) -> LoanPage:
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
