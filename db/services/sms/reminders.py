"""One reminder now, asked for by the staff who hold a loan (/remind and the card's button).

At most one such reminder per loan a day (its idempotency key); refused at once when the
worker would not send it (opted out, suppressed, nothing due); queued for the next opening
of the allowed hours when asked outside them. The sending policy still applies to it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from db import clock, sms_text
from db.agency import agency_of
from db.config import Settings
from db.models import Borrower, Loan, LoanEventKind, MessageKind, Suppression
from db.money import format_money
from db.services.access import Actor
from db.services.audit.write import AuditAction, audit, loan_event
from db.services.collection.ledger import ZERO
from db.services.errors import Conflict
from db.services.loans.guards import find_loan, refuse_archived, require_active
from db.services.sms.outbox import MessageInfo, queue_message
from db.sms_window import next_window_open, zone

MANUAL_RULE = "manual"


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
    loan = find_loan(session, actor=actor, loan_number=loan_number)
    refuse_archived(loan)  # an admin may open one; nothing is sent about it
    require_active(loan)
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
