"""The worker's jobs as plain functions, tested without the scheduler.

plan_reminders queues the day's reminders; dispatch_due and reconcile (scheduler.dispatch)
send them and find out what happened; daily charges late fees and breaks promises.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import String, cast, exists, literal, or_, select
from sqlalchemy.orm import Session

from db import clock, sms_text
from db.config import Settings
from db.models import (
    Borrower,
    Installment,
    Loan,
    LoanState,
    Message,
    MessageKind,
    MessageStatus,
    Suppression,
)
from db.services import fees, promises
from db.services.outbox import EventSource, dialect_insert, record_events
from scheduler.dispatch import DispatchReport, ReconcileReport, dispatch_due, reconcile
from scheduler.policy import window_start, zone

__all__ = [
    "DailyReport",
    "DispatchReport",
    "ReconcileReport",
    "daily",
    "dispatch_due",
    "plan_reminders",
    "plan_rule",
    "reconcile",
]

log = logging.getLogger(__name__)

# Rows rendered and inserted per round trip; a million loans are never held at once.
PLAN_BATCH = 500


def reminder_key(loan_id: int, rule: str, due: date) -> str:
    """The idempotency key of a reminder: once per loan, rule and due date."""
    return f"rem:{loan_id}:{rule}:{due.isoformat()}"


def _columns() -> tuple:
    """What a reminder needs: the installment, its loan's totals, the borrower."""
    return (
        Installment.loan_id, Installment.due_date, Installment.principal_due,
        Installment.interest_due, Installment.fee_due, Installment.amount_paid,
        Installment.fee_paid, Loan.loan_number, Loan.amount_payable, Loan.fees_charged,
        Loan.amount_paid.label("loan_paid"), Borrower.id.label("borrower_id"), Borrower.name,
        Borrower.phone, Borrower.timezone,
    )  # fmt: skip


def _due_rows(session: Session, *, due: date, rule: str) -> Iterator[Sequence[Any]]:
    """Unsettled installments of active loans due on due, not yet reminded, in batches."""
    key = literal("rem:") + cast(Installment.loan_id, String) + literal(f":{rule}:{due}")
    stmt = (
        select(*_columns())
        .join(Loan, Loan.id == Installment.loan_id)
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .where(
            Installment.due_date == due,
            Loan.state == LoanState.ACTIVE,
            or_(
                Installment.amount_paid < Installment.principal_due + Installment.interest_due,
                Installment.fee_paid < Installment.fee_due,
            ),
            # Opted-out and suppressed numbers are skipped here (policy re-checks at send).
            Borrower.opted_out_at.is_(None),
            ~exists().where(Suppression.phone == Borrower.phone),
            # Cheap re-runs every 15 minutes: the unique key index answers this.
            ~exists().where(Message.idempotency_key == key),
        )
        .order_by(Installment.loan_id)
    )
    result = session.execute(stmt.execution_options(yield_per=PLAN_BATCH))
    yield from result.partitions()


def _signature(settings: Settings) -> str:
    """{agency}: the agency's name, and its phone when set, so a borrower can call back."""
    return " ".join(filter(None, (settings.agency_name, settings.agency_phone)))


def _row_values(row: Any, *, rule: str, days: int, settings: Settings, now: datetime) -> dict:
    """One reminder's message row: rendered body, and the hours it may go out in."""
    owed = row.principal_due + row.interest_due + row.fee_due - row.amount_paid - row.fee_paid
    money = partial(
        sms_text.sms_amount, currency=settings.currency, minor_units=settings.minor_units
    )
    body = sms_text.render(
        sms_text.template_for(days),
        {
            "name": row.name, "amount_due": money(owed), "loan_number": row.loan_number,
            "outstanding": money(row.amount_payable + row.fees_charged - row.loan_paid),
            "due_date": sms_text.sms_date(row.due_date), "agency": _signature(settings),
        },
    )  # fmt: skip
    tz = zone(row.timezone, settings.agency_timezone)
    today = row.due_date + timedelta(days=days)
    send_after = window_start(today, tz, settings.allowed_window[0]).astimezone(UTC)
    return {
        "to_phone": row.phone, "body": body, "kind": MessageKind.REMINDER,
        "borrower_id": row.borrower_id, "loan_id": row.loan_id, "rule": rule,
        "idempotency_key": reminder_key(row.loan_id, rule, row.due_date),
        "status": MessageStatus.QUEUED, "attempts": 0, "send_after": send_after,
        "expires_at": send_after + timedelta(hours=settings.sms_expiry_hours),
        "created_at": now, "updated_at": now,
    }  # fmt: skip


def plan_rule(session: Session, *, days: int, today: date, settings: Settings) -> int:
    """Queue reminders for one rule (days relative to the due date); returns rows queued."""
    rule, due = sms_text.rule_name(days), today - timedelta(days=days)
    queued, now = 0, clock.utcnow()
    for rows in _due_rows(session, due=due, rule=rule):
        values = [_row_values(r, rule=rule, days=days, settings=settings, now=now) for r in rows]
        stmt = dialect_insert(session, Message.__table__).values(values)
        # Another planner (a second worker, a restart) may have queued some meanwhile.
        stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])
        ids = list(session.scalars(stmt.returning(Message.__table__.c.id)))
        record_events(session, ids, MessageStatus.QUEUED, EventSource.PLANNER, rule)
        queued += len(ids)
    return queued


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
