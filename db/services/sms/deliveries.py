"""Delivery reports for admins, and one reminder now for the staff who hold a loan.

Delivery rate = delivered / (delivered + undelivered + failed): only messages whose fate is
known count; SENT ones still waiting for the carrier's report are shown apart (pending).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from db import clock, error_codes, sms_text
from db.agency import agency_of
from db.config import Settings
from db.models import (
    Borrower,
    Loan,
    LoanEventKind,
    LoanState,
    Message,
    MessageKind,
    Role,
    Suppression,
)
from db.models import MessageStatus as S
from db.money import format_money
from db.services.access import Actor, refuse_archived, refuse_read_only, require_reader
from db.services.audit.write import AuditAction, audit, loan_event
from db.services.collection.ledger import ZERO
from db.services.errors import Conflict
from db.services.loans.lookup import load_loan
from db.services.sms.outbox import MessageInfo, queue_message
from db.sms_window import next_window_open, zone

FAILED = (S.FAILED, S.UNDELIVERED)
TOP_ERRORS = 5
MANUAL_RULE = "manual"


# --- failures by code ---------------------------------------------------------------------


@dataclass(frozen=True)
class FailureLine:
    code: str
    count: int
    words: str


def _code_expr() -> ColumnElement[str]:
    """error_codes.classify, in SQL: the provider's code, else a kind read from the text."""
    prefixes = error_codes.PREFIXES.items()
    whens = [(Message.error_message.like(p + "%"), c.value) for c, p in prefixes]
    return case(
        (Message.error_code.is_not(None), Message.error_code),
        *whens,
        else_=error_codes.LocalCode.NONE.value,
    )


def failure_counts(
    session: Session, *where: ColumnElement[bool], limit: int | None = None
) -> list[FailureLine]:
    """Failed and undelivered messages matching where, counted by code, most common first."""
    inner = select(_code_expr().label("code")).where(Message.status.in_(FAILED), *where).subquery()
    n = func.count().label("n")
    stmt = select(inner.c.code, n).group_by(inner.c.code).order_by(n.desc(), inner.c.code)
    rows = session.execute(stmt.limit(limit)).all()
    return [FailureLine(code, int(count), error_codes.describe(code)) for code, count in rows]


# --- delivery report ----------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodCounts:
    since: datetime
    by_kind: dict[str, dict[str, int]]  # kind -> status -> count (every status present)
    totals: dict[str, int]  # status -> count
    delivered: int
    finished: int  # delivered + undelivered + failed
    pending: int  # queued, sending, or sent without a final report
    delivery_rate: Decimal | None  # percent, one decimal; None when nothing finished


@dataclass(frozen=True)
class DeliveryReport:
    now: datetime
    day: PeriodCounts
    week: PeriodCounts
    top_errors: tuple[FailureLine, ...]  # last 7 days


def _period(since: datetime, counts: dict[tuple[str, str], int]) -> PeriodCounts:
    by_kind = {k.value: {s.value: counts.get((k, s), 0) for s in S} for k in MessageKind}
    totals = {s.value: sum(per[s.value] for per in by_kind.values()) for s in S}
    delivered = totals[S.DELIVERED]
    finished = delivered + totals[S.UNDELIVERED] + totals[S.FAILED]
    pending = totals[S.QUEUED] + totals[S.SENDING] + totals[S.SENT]
    rate = None
    if finished:
        rate = (Decimal(100 * delivered) / finished).quantize(Decimal("0.1"))
    return PeriodCounts(since, by_kind, totals, delivered, finished, pending, rate)


def delivery_report(session: Session, *, actor: Actor, now: datetime) -> DeliveryReport:
    """Messages created in the last day and 7 days, by kind and status, and the top errors."""
    require_reader(actor, Role.ADMIN, "read delivery reports")
    day_ago, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    in_day = func.coalesce(func.sum(case((Message.created_at >= day_ago, 1), else_=0)), 0)
    rows = session.execute(
        select(Message.kind, Message.status, func.count(), in_day)
        .where(Message.created_at >= week_ago, Message.created_at <= now)
        .group_by(Message.kind, Message.status)
    ).all()
    week = {(k, s): int(n) for k, s, n, _ in rows}
    day = {(k, s): int(d) for k, s, _, d in rows}
    top = failure_counts(
        session, Message.created_at >= week_ago, Message.created_at <= now, limit=TOP_ERRORS
    )
    return DeliveryReport(now, _period(day_ago, day), _period(week_ago, week), tuple(top))


# --- one reminder now ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReminderInfo(MessageInfo):
    """The queued reminder, and when it may go out if now is outside the allowed hours."""

    waits_until: datetime | None = None


def _amount_due(loan: Loan, today: date) -> Decimal:
    """What is due now: every unpaid installment up to today, else the next one."""
    cutoff = max(today, loan.next_due_date or today)
    return sum(
        (
            i.principal_due + i.interest_due + i.fee_due - i.amount_paid - i.fee_paid
            for i in loan.installments
            if i.due_date <= cutoff
        ),
        ZERO,
    )


def _reminder_body(loan: Loan, today: date, settings: Settings) -> str:
    due = loan.next_due_date
    if due is None:
        raise Conflict(f"Nothing is due on loan {loan.loan_number}.", code="nothing_due")

    agency = agency_of(settings)

    def money(amount: Decimal) -> str:
        return format_money(amount, agency, plain=True)

    values = {
        "name": loan.borrower.name,
        "amount_due": money(_amount_due(loan, today)),
        "outstanding": money(loan.outstanding),
        "due_date": sms_text.sms_date(due),
        "loan_number": loan.loan_number,
        "agency": agency.name,
    }
    return sms_text.render(sms_text.template_for((today - due).days), values)


def _check_reachable(session: Session, borrower: Borrower) -> None:
    """Conflict when the worker would suppress any SMS to this borrower."""
    if borrower.opted_out_at is not None:
        raise Conflict(
            f"{borrower.name} has opted out of SMS (replied STOP); no reminder was queued.",
            code="opted_out",
        )
    blocked = session.get(Suppression, borrower.phone)
    if blocked is not None:
        raise Conflict(
            f"{borrower.phone} cannot take SMS ({blocked.reason}); no reminder was queued.",
            code="suppressed",
        )


def queue_reminder_now(
    session: Session, *, actor: Actor, loan_number: str, today: date, settings: Settings
) -> ReminderInfo:
    """Queue one reminder for a loan the actor may see; at most one such per loan a day."""
    refuse_read_only(actor, "text borrowers")
    loan = load_loan(session, actor, loan_number)
    refuse_archived(loan)  # an admin may open one; nothing is sent about it
    if loan.state != LoanState.ACTIVE:
        raise Conflict(f"Loan {loan.loan_number} is not active.", code="loan_not_active")
    _check_reachable(session, loan.borrower)
    body = _reminder_body(loan, today, settings)
    now = clock.utcnow()
    tz = zone(loan.borrower.timezone, settings.agency_timezone)
    waits = next_window_open(now, tz, settings.allowed_window)
    info = queue_message(
        session,
        to=loan.borrower.phone,
        body=body,
        kind=MessageKind.REMINDER,
        idempotency_key=f"manual:{loan.id}:{today.isoformat()}",
        borrower_id=loan.borrower_id,
        loan_id=loan.id,
        rule=MANUAL_RULE,
        send_after=waits or now,
        expires_at=(waits or now) + timedelta(hours=settings.sms_expiry_hours),
        requested_by=actor.staff_id,
    )
    if info is None:
        raise Conflict(
            f"Loan {loan.loan_number} was already reminded today.", code="already_reminded"
        )
    note = f"reminder queued by hand (message {info.id})"
    loan_event(session, loan_id=loan.id, actor=actor, kind=LoanEventKind.REMINDER, note=note)
    details = {"message_id": info.id, "loan_number": loan.loan_number}
    audit(
        session,
        actor=actor,
        action=AuditAction.REMINDER_REQUESTED,
        target_type="loan",
        target_id=loan.id,
        details=details,
    )
    base = {f.name: getattr(info, f.name) for f in fields(MessageInfo)}
    return ReminderInfo(**base, waits_until=waits)
