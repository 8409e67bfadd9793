"""Promises to pay and contacts with borrowers.

One open promise per loan: recording a new one supersedes the open one, which becomes
BROKEN at once with a PROMISE_BROKEN event noted "replaced by a new promise" and made by the
actor (the daily job's breaks have no staff and the note "date passed"). The schema has no
SUPERSEDED state, and a renegotiated promise is one the borrower did not keep as made.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import agency as agencies
from db import clock
from db.agency import Agency
from db.models import (
    Contact,
    ContactChannel,
    ContactOutcome,
    Loan,
    LoanEventKind,
    Promise,
    PromiseState,
    Staff,
)
from db.services.access import LIVE_LOAN, Actor
from db.services.audit.write import AuditAction, audit, loan_event
from db.services.errors import InvalidInput
from db.services.loans.guards import (
    check_amount,
    find_loan,
    refuse_above_owed,
    refuse_archived,
    require_active,
)
from db.services.loans.snapshots import ContactView, PromiseView
from db.validation import clean_text

log = logging.getLogger(__name__)

PROMISE_MAX_DAYS = 90
BATCH = 500
NOTE_REPLACED = "replaced by a new promise"
NOTE_DATE_PASSED = "date passed"


def _promise_view(p: Promise, made_by: str | None) -> PromiseView:
    return PromiseView(p.id, p.amount, p.promised_date, p.state, made_by, p.created_at)


def _check_promise_date(promised_date: date, today: date) -> None:
    if promised_date < today:
        raise InvalidInput("That date has passed; give today or a later date.", code="date_past")
    if promised_date > today + timedelta(days=PROMISE_MAX_DAYS):
        raise InvalidInput(
            f"A promise can be at most {PROMISE_MAX_DAYS} days ahead.",
            code="date_far",
            max_days=PROMISE_MAX_DAYS,
        )


_RESOLVED_KIND = {
    PromiseState.KEPT: LoanEventKind.PROMISE_KEPT,
    PromiseState.BROKEN: LoanEventKind.PROMISE_BROKEN,
}


def _resolve(
    session: Session, p: Promise, state: PromiseState, actor: Actor | None, note: str
) -> None:
    kind = _RESOLVED_KIND[state]
    p.state, p.resolved_at = state, clock.utcnow()
    loan_event(
        session,
        loan_id=p.loan_id,
        actor=actor,
        kind=kind,
        note=note,
        before={"promise_id": p.id, "state": PromiseState.OPEN},
        after={"promise_id": p.id, "state": state, "amount": p.amount},
    )


def _open_promises(session: Session, loan_id: int) -> list[Promise]:
    stmt = select(Promise).where(Promise.loan_id == loan_id, Promise.state == PromiseState.OPEN)
    # Locked, so a payment keeping a promise and the daily job breaking it cannot both win.
    stmt = stmt.order_by(Promise.id).with_for_update().execution_options(populate_existing=True)
    return list(session.scalars(stmt))


def record_promise(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    amount: Decimal,
    promised_date: date,
    today: date,
    note: str | None = None,
    agency: Agency = agencies.DEFAULT,
) -> PromiseView:
    """Record what the borrower promised to pay by a date; it supersedes an open promise."""
    amount = check_amount(amount, max_amount=Decimal("100000000"), agency=agency)
    _check_promise_date(promised_date, today)
    note = clean_text(note, field="note", max_len=500, required=False)
    loan = find_loan(session, actor=actor, loan_number=loan_number, lock=True)
    require_active(loan)
    refuse_above_owed(loan, amount, code="promise_too_much", agency=agency)
    for old in _open_promises(session, loan.id):
        _resolve(session, old, PromiseState.BROKEN, actor, NOTE_REPLACED)
    promise = Promise(
        loan_id=loan.id,
        amount=amount,
        promised_date=promised_date,
        state=PromiseState.OPEN,
        paid_baseline=loan.amount_paid,
        made_by_id=actor.staff_id,
        note=note,
    )
    session.add(promise)
    session.flush()
    details = {"promise_id": promise.id, "amount": amount, "promised_date": promised_date}
    loan_event(session, loan_id=loan.id, actor=actor, kind=LoanEventKind.PROMISE, after=details)
    audit(
        session,
        actor=actor,
        action=AuditAction.PROMISE_RECORDED,
        target_type="loan",
        target_id=loan.loan_number,
        details=details,
    )
    return _promise_view(promise, actor.name or None)


def settle_promises(session: Session, *, loan: Loan, actor: Actor | None = None) -> int:
    """Mark KEPT the loan's open promises that payments since they were made now cover."""
    kept = 0
    for p in _open_promises(session, loan.id):
        if loan.amount_paid - p.paid_baseline >= p.amount:
            _resolve(session, p, PromiseState.KEPT, actor, "covered by payments")
            kept += 1
    return kept


def break_promises_batch(
    session: Session,
    *,
    today: date,
    after_id: int,
    limit: int = BATCH,
) -> tuple[int, int | None]:
    """Break the next `limit` overdue uncovered promises after after_id (by id).

    Returns (broken, last promise id, or None when none was left). Only OPEN promises are
    picked, so a batch run again after a restart breaks (and logs) nothing twice.
    """
    stmt = (
        select(Promise)
        .join(Loan, Loan.id == Promise.loan_id)
        .where(
            Promise.state == PromiseState.OPEN,
            LIVE_LOAN,
            Promise.promised_date < today,
            Loan.amount_paid - Promise.paid_baseline < Promise.amount,
            Promise.id > after_id,
        )
        .order_by(Promise.id)
        .limit(limit)
        # Two workers running the job at once must not break (and log) one promise twice.
        .with_for_update(of=Promise, skip_locked=True)
    )
    batch = list(session.scalars(stmt))
    if not batch:
        return 0, None
    for p in batch:
        _resolve(session, p, PromiseState.BROKEN, None, NOTE_DATE_PASSED)
    session.flush()
    return len(batch), batch[-1].id


def break_overdue_promises(session: Session, *, today: date) -> int:
    """The daily job: open promises whose date has passed uncovered become BROKEN."""
    broken, after_id = 0, 0
    while True:
        done, last = break_promises_batch(session, today=today, after_id=after_id)
        if last is None:
            break
        broken, after_id = broken + done, last
    log.info("broke %s overdue promises", broken)
    return broken


def record_contact(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    channel: ContactChannel,
    outcome: ContactOutcome,
    note: str | None,
) -> ContactView:
    """Note a call, visit or message with the borrower and what came of it."""
    note = clean_text(note, field="note", max_len=1000, required=False)
    loan = find_loan(session, actor=actor, loan_number=loan_number)
    refuse_archived(loan)
    contact = Contact(
        loan_id=loan.id,
        channel=ContactChannel(channel),
        outcome=ContactOutcome(outcome),
        note=note,
        staff_id=actor.staff_id,
    )
    session.add(contact)
    session.flush()
    details = {"contact_id": contact.id, "channel": contact.channel, "outcome": contact.outcome}
    loan_event(
        session, loan_id=loan.id, actor=actor, kind=LoanEventKind.CONTACT, after=details, note=note
    )
    audit(
        session,
        actor=actor,
        action=AuditAction.CONTACT_RECORDED,
        target_type="loan",
        target_id=loan.loan_number,
        details=details,
    )
    return ContactView(
        contact.id,
        contact.channel,
        contact.outcome,
        contact.note,
        actor.name or None,
        contact.created_at,
    )


def list_promises(session: Session, *, actor: Actor, loan_number: str) -> list[PromiseView]:
    """The loan's promises, newest first."""
    loan = find_loan(session, actor=actor, loan_number=loan_number)
    stmt = (
        select(Promise, Staff.name)
        .outerjoin(Staff, Staff.id == Promise.made_by_id)
        .where(Promise.loan_id == loan.id)
        .order_by(Promise.created_at.desc(), Promise.id.desc())
    )
    return [_promise_view(p, name) for p, name in session.execute(stmt)]
