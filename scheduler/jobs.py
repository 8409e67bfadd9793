"""The worker's jobs as plain functions, tested without the scheduler.

plan_reminders queues the day's reminders (and those missed while the worker was down,
while still timely): one INSERT ... SELECT per rule, the database rendering each body
exactly as sms_text.render would. dispatch_due (scheduler.dispatch) and reconcile
(scheduler.reconcile) send them and find out what happened; daily charges late fees and
breaks promises.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    SQLColumnExpression,
    String,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from db import clock, sms_text
from db.agency import Agency, agency_of
from db.config import LateFeeKind, Settings
from db.models import (
    MONEY_SCALE,
    Borrower,
    Installment,
    Loan,
    LoanState,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    Suppression,
)
from db.services.access import LIVE_LOAN, on_hold
from db.services.collection import fees, promises
from db.services.sms.outbox import EventSource, dialect_insert, record_events
from scheduler.dispatch import DispatchReport, dispatch_due
from scheduler.policy import window_start, zone
from scheduler.reconcile import ReconcileReport, reconcile

__all__ = [
    "DailyReport",
    "DispatchReport",
    "ReconcileReport",
    "daily",
    "daily_in_batches",
    "dispatch_due",
    "late_days",
    "plan_reminders",
    "plan_rule",
    "reconcile",
]

log = logging.getLogger(__name__)

# Marks where a per-row value goes in a body rendered by sms_text.render (no text holds NUL).
_MARK = "\x00"
# An amount as terms of (sign, column): what is left of the installment, and of the loan.
_OWED = (
    (1, Installment.principal_due),
    (1, Installment.interest_due),
    (1, Installment.fee_due),
    (-1, Installment.amount_paid),
    (-1, Installment.fee_paid),
)
_OUTSTANDING = ((1, Loan.amount_payable), (1, Loan.fees_charged), (-1, Loan.amount_paid))
_T = Message.__table__.c


def reminder_key(loan_id: int, rule: str, due: date) -> str:
    """The idempotency key of a reminder: once per loan, rule and due date."""
    return f"rem:{loan_id}:{rule}:{due.isoformat()}"


def late_days(days: int, settings: Settings) -> int:
    """How many days late a rule's missed reminders may still be planned (0: none)."""
    if days == 0:  # its text says "due today"
        return 0
    # Before its expiry, and only until the next rule takes the installment over.
    late = math.ceil(settings.sms_expiry_hours / 24) - 1
    later = [d - days - 1 for d in settings.reminder_days if d > days]
    return max(0, min([late, *later]))


def _per_due(dues: Sequence[date], text: Callable[[date], str]) -> ColumnElement[str]:
    """A text depending on the row's due date, one of the few being planned."""
    first, *rest = dues
    whens = [(Installment.due_date == due, literal(text(due))) for due in rest]
    return case(*whens, else_=literal(text(first))) if whens else literal(text(first))


def _key_sql(rule: str, dues: Sequence[date]) -> ColumnElement[str]:
    """reminder_key in SQL, for every row at once."""
    suffix = _per_due(dues, lambda due: f":{rule}:{due.isoformat()}")
    return literal("rem:") + cast(Installment.loan_id, String) + suffix


def _sign(value: SQLColumnExpression[Any]) -> ColumnElement[str]:
    return case((value < 0, literal("-")), else_=literal(""))


def _digits(units: ColumnElement[int], minor_units: int) -> ColumnElement[str]:
    """SQLite: whole minor units (not negative) as text with minor_units decimals."""
    if minor_units == 0:
        return func.printf("%d", units, type_=String)
    scale = 10**minor_units
    return func.printf(f"%d.%0{minor_units}d", units // scale, units % scale, type_=String)


def _signed_sum(
    terms: Sequence[tuple[int, SQLColumnExpression[Any]]],
    each: Callable[[SQLColumnExpression[Any]], SQLColumnExpression[Any]],
) -> SQLColumnExpression[Any]:
    return reduce(operator.add, (each(c) if sign > 0 else -each(c) for sign, c in terms))


def _cents(column: SQLColumnExpression[Any]) -> ColumnElement[int]:
    return cast(func.round(column * 10**MONEY_SCALE), Integer)


def amount_sql(
    terms: Sequence[tuple[int, SQLColumnExpression[Any]]], dialect: str, agency: Agency
) -> ColumnElement[str]:
    """format_money(..., plain=True) of a sum of money columns, in SQL, to the same character.

    (Babel cannot run in SQL: the plain form, code, sign and digits, is written out here.)"""
    minor = agency.minor_units
    if dialect == "postgresql":
        total = _signed_sum(terms, lambda c: c)
        text: ColumnElement[str] = cast(func.round(func.abs(total), minor), String)
    else:
        # SQLite keeps Numeric as REAL: add whole cents, which are exact, then round half up.
        total = _signed_sum(terms, _cents)
        shift = MONEY_SCALE - minor
        units: ColumnElement[Any] = func.abs(total) * 10**-shift if shift < 0 else func.abs(total)
        if shift > 0:
            units = (units + 10**shift // 2) // 10**shift
        text = _digits(units, minor)
    return literal(f"{agency.currency} ") + _sign(total) + text


def body_sql(
    template: str, *, dues: Sequence[date], dialect: str, agency: Agency
) -> SQLColumnExpression[str]:
    """The template as rendered by sms_text.render, with each row's values filled in SQL."""
    per_row: dict[str, SQLColumnExpression[str]] = {
        "name": Borrower.name,
        "loan_number": Loan.loan_number,
        "amount_due": amount_sql(_OWED, dialect, agency),
        "outstanding": amount_sql(_OUTSTANDING, dialect, agency),
        "due_date": _per_due(dues, sms_text.sms_date),
    }
    fixed = {"agency": agency.signature}
    marked = {name: f"{_MARK}{name}{_MARK}" for name in per_row}
    rendered = sms_text.render(template, fixed | marked)
    if rendered.startswith(_MARK) or rendered.endswith(_MARK):
        # render strips the whole text, which SQL could not do to a borrower's value.
        raise ValueError("a reminder template must start and end with fixed text")
    parts = rendered.split(_MARK)  # text, field, text, field, ..., text
    pieces: list[SQLColumnExpression[str]] = [
        literal(p) if i % 2 == 0 else per_row[p] for i, p in enumerate(parts) if p
    ]
    return reduce(operator.add, pieces)


def _window_opens(name: str | None, day: date, settings: Settings) -> datetime:
    tz = zone(name, settings.agency_timezone)
    return window_start(day, tz, settings.allowed_window[0]).astimezone(UTC)


def _zone_pick(
    zones: Sequence[str], day: date, offset: timedelta, settings: Settings
) -> ColumnElement:
    """The window's start on day (plus offset) in the borrower's zone, as a CASE."""
    default = _window_opens(None, day, settings)
    groups: dict[datetime, list[str]] = {}
    for name in zones:
        opens = _window_opens(name, day, settings)
        if opens != default:
            groups.setdefault(opens, []).append(name)
    whens = [
        (Borrower.timezone.in_(names), literal(at + offset, _T.send_after.type))
        for at, names in groups.items()
    ]
    fallback = literal(default + offset, _T.send_after.type)
    return case(*whens, else_=fallback) if whens else fallback


def send_after_sql(
    session: Session, *, days: int, dues: Sequence[date], settings: Settings
) -> tuple[ColumnElement, ColumnElement]:
    """(send_after, expires_at): the window's start in each borrower's zone, via zoneinfo.

    On the day each row's reminder was meant to go (its due date + days). The zones
    borrowers have are few; each is worked out in Python (as policy does, so an unknown
    zone is the agency's) and the borrower's zone picks its time with a CASE.
    A borrower added with a new zone between this read and the INSERT gets the agency's
    window start; policy still holds the message until the borrower's own hours.
    """
    stmt = select(Borrower.timezone).distinct().where(Borrower.timezone.is_not(None))
    zones = [zone for zone in session.scalars(stmt) if zone is not None]  # as the WHERE says
    expiry = timedelta(hours=settings.sms_expiry_hours)
    first, *rest = dues

    def pick(offset: timedelta) -> ColumnElement:
        on = [
            (
                Installment.due_date == due,
                _zone_pick(zones, due + timedelta(days=days), offset, settings),
            )
            for due in rest
        ]
        fallback = _zone_pick(zones, first + timedelta(days=days), offset, settings)
        return case(*on, else_=fallback) if on else fallback

    return pick(timedelta(0)), pick(expiry)


def _unreminded(
    dues: Sequence[date], key: ColumnElement[str], today: date
) -> list[ColumnElement[bool]]:
    """Unsettled installments of active loans due on one of dues, not yet reminded."""
    return [
        Installment.due_date.between(min(dues), max(dues)),
        Loan.state == LoanState.ACTIVE,
        LIVE_LOAN,
        # Disputed, or paused for hardship: no reminder until it is resolved or ends.
        ~on_hold(today),
        or_(
            Installment.amount_paid < Installment.principal_due + Installment.interest_due,
            Installment.fee_paid < Installment.fee_due,
        ),
        # Opted-out and suppressed numbers are skipped here (policy re-checks at send).
        Borrower.opted_out_at.is_(None),
        ~exists().where(Suppression.phone == Borrower.phone),
        # Cheap re-runs every 15 minutes: the unique key index answers this.
        ~exists().where(Message.idempotency_key == key),
    ]


def _due_select(
    session: Session,
    *,
    days: int,
    dues: Sequence[date],
    settings: Settings,
    now: datetime,
    today: date,
) -> tuple[list[str], Select]:
    """The message columns, and the SELECT making one reminder row per due installment."""
    rule = sms_text.rule_name(days)
    key = _key_sql(rule, dues)
    dialect = session.get_bind().dialect.name
    send_after, expires_at = send_after_sql(session, days=days, dues=dues, settings=settings)
    agency = agency_of(settings)
    body = body_sql(sms_text.template_for(days), dues=dues, dialect=dialect, agency=agency)
    created = literal(now, _T.created_at.type)
    values = {
        "to_phone": Borrower.phone,
        "body": body,
        "kind": literal(MessageKind.REMINDER, _T.kind.type),
        "borrower_id": Borrower.id,
        "loan_id": Installment.loan_id,
        "loan_version": Loan.version,
        "rule": literal(rule),
        "idempotency_key": key,
        "status": literal(MessageStatus.QUEUED, _T.status.type),
        "attempts": literal(0),
        "send_after": send_after,
        "expires_at": expires_at,
        "created_at": created,
        "updated_at": created,
    }
    stmt = (
        select(*values.values())
        .join(Loan, Loan.id == Installment.loan_id)
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .where(*_unreminded(dues, key, today))
        # Planned late and already past its expiry: policy would only suppress it.
        .where(expires_at > created)
        .order_by(Installment.loan_id)
    )
    return list(values), stmt


def plan_rule(session: Session, *, days: int, today: date, settings: Settings) -> int:
    """Queue reminders for one rule (days relative to the due date); returns rows queued."""
    # Also the days before, missed if the worker was down: the key stops any repeat.
    rule, now = sms_text.rule_name(days), clock.utcnow()
    late = range(late_days(days, settings) + 1)
    dues = [today - timedelta(days=days + k) for k in late]  # today's first
    names, rows = _due_select(
        session, days=days, dues=dues, settings=settings, now=now, today=today
    )
    # One INSERT ... SELECT: the database renders every body, nothing is streamed through us.
    # Another planner (a second worker, a restart) may have queued some meanwhile.
    plain = dialect_insert(session, Message.__table__).from_select(names, rows)
    insert = plain.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(_T.id)
    if session.get_bind().dialect.name != "postgresql":
        # SQLite has no INSERT inside WITH: the new ids come back, their events follow.
        ids = list(session.scalars(insert))
        record_events(session, ids, MessageStatus.QUEUED, EventSource.PLANNER, rule)
        return len(ids)
    queued = insert.cte("queued")
    events = MessageEvent.__table__.insert().from_select(
        ["message_id", "status", "source", "detail", "created_at"],
        select(
            queued.c.id,
            literal(str(MessageStatus.QUEUED)),
            literal(EventSource.PLANNER),
            literal(rule),
            literal(now, MessageEvent.__table__.c.created_at.type),
        ),
    )
    # PostgreSQL: both INSERTs in one statement, which answers how many were queued.
    return session.execute(
        select(func.count()).select_from(queued).add_cte(events.cte())
    ).scalar_one()


def plan_reminders(session: Session, *, today: date, settings: Settings) -> int:
    """Queue every rule's reminders for today, at most once per loan, rule and due date."""
    queued = sum(
        plan_rule(session, days=days, today=today, settings=settings)
        for days in settings.reminder_days
    )
    log.info("planned %s reminders for %s", queued, today)
    return queued


@dataclass(frozen=True)
class DailyReport:
    late_fees: int
    promises_broken: int


def daily(session: Session, *, today: date, settings: Settings) -> DailyReport:
    """Once a day: late fees on installments past the grace days, then broken promises."""
    charged = fees.apply_late_fees(
        session,
        today=today,
        kind=settings.late_fee_kind,
        amount=settings.late_fee_amount,
        percent=settings.late_fee_percent,
        grace_days=settings.late_fee_grace_days,
    )
    broken = promises.break_overdue_promises(session, today=today)
    return DailyReport(late_fees=charged, promises_broken=broken)


# Loans (or promises) per transaction of the daily job: short enough that the bot's writes
# wait a moment at most (SQLite has one writer; PostgreSQL row locks block payments).
DAILY_BATCH = 300


Batch = Callable[[Session, int], tuple[int, int | None]]


def _in_batches(
    factory: sessionmaker[Session], run: Batch, after_batch: Callable[[], None] | None
) -> int:
    """Call run(session, after_id) each in its own transaction until it says none is left."""
    total, after_id = 0, 0
    while True:
        with factory.begin() as session:
            done, last = run(session, after_id)
        if last is None:
            return total
        total, after_id = total + done, last
        if after_batch is not None:
            after_batch()


def daily_in_batches(
    factory: sessionmaker[Session],
    *,
    today: date,
    settings: Settings,
    batch_size: int = DAILY_BATCH,
    after_batch: Callable[[], None] | None = None,
) -> DailyReport:
    """The daily job, a batch of loans per short transaction (issue 9 item 12).

    Resumable and idempotent: a fee marks its installment and a broken promise leaves OPEN,
    so a run stopped half-way (a crash, a restart) and run again finishes the work and
    repeats none of it. after_batch is called between batches, outside any transaction.
    """
    rule = fees.FeeRule(
        LateFeeKind(settings.late_fee_kind), settings.late_fee_amount, settings.late_fee_percent
    )
    cutoff = fees.fee_cutoff(today, settings.late_fee_grace_days)
    charged = 0
    if rule.charges:
        charged = _in_batches(
            factory,
            lambda s, after: fees.charge_batch(
                s, cutoff=cutoff, rule=rule, after_id=after, limit=batch_size, today=today
            ),
            after_batch,
        )
    broken = _in_batches(
        factory,
        lambda s, after: promises.break_promises_batch(
            s, today=today, after_id=after, limit=batch_size
        ),
        after_batch,
    )
    log.info("daily job: %s late fees, %s promises broken", charged, broken)
    return DailyReport(late_fees=charged, promises_broken=broken)
