"""Disputes and hardship pauses (issue 11): collection on a loan stops until resolved.

A dispute (opened by staff, or by the borrower texting DISPUTE) stops reminders and late
fees at once: the queued reminders are withdrawn in the same transaction, the planner plans
none and the dispatcher cancels one claimed meanwhile. A manager resolves it: upheld (the
borrower is right; the manager then adjusts or writes off as usual) or rejected (collection
resumes), with a reason. Hardship is the same with an end date: collection resumes by itself
on that day (every check compares `until` with today), or earlier when a manager ends it.
Agents open holds on their own loans; managers and admins resolve. Rows are never deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from db import clock
from db.models import HoldKind, HoldOutcome, Loan, LoanHold, LoanState, Role, Staff
from db.services.access import PAUSING, Actor, require_role, scope_live_loans
from db.services.audit.write import AuditAction, audit
from db.services.collection import ledger, payments
from db.services.errors import Conflict, InvalidInput
from db.services.loans.guards import find_loan, refuse_stale, require_active
from db.services.sms.truth import WithdrawReason, withdraw_for_loan
from db.validation import clean_text

log = logging.getLogger(__name__)

MAX_PAUSE_DAYS = 366
_WITHDRAW = {HoldKind.DISPUTE: WithdrawReason.DISPUTED, HoldKind.HARDSHIP: WithdrawReason.HARDSHIP}
# Which outcomes close which kind of hold.
_OUTCOMES = {
    HoldKind.DISPUTE: (HoldOutcome.UPHELD, HoldOutcome.REJECTED),
    HoldKind.HARDSHIP: (HoldOutcome.ENDED,),
    HoldKind.PAYMENT: (HoldOutcome.UPHELD, HoldOutcome.REJECTED),
}


@dataclass(frozen=True)
class HoldView:
    id: int
    loan_id: int
    loan_number: str
    kind: HoldKind
    note: str
    opened_at: datetime
    opened_by: str | None  # None: the borrower, by SMS
    until: date | None
    payment_id: int | None
    outcome: HoldOutcome | None
    resolution_note: str | None
    withdrawn: int = 0


def _view(session: Session, hold: LoanHold, loan_number: str, withdrawn: int = 0) -> HoldView:
    opener = session.get(Staff, hold.opened_by_id) if hold.opened_by_id else None
    return HoldView(
        hold.id,
        hold.loan_id,
        loan_number,
        HoldKind(hold.kind),
        hold.note,
        hold.opened_at,
        opener.name if opener else None,
        hold.until,
        hold.payment_id,
        HoldOutcome(hold.outcome) if hold.outcome else None,
        hold.resolution_note,
        withdrawn,
    )


def _note(text: str | None, field: str = "note") -> str:
    note = clean_text(text, field=field, max_len=500)
    if note is None or len(note) < 3:
        raise InvalidInput(f"Give a {field} of at least 3 characters.", code="reason_short")
    return note


def _open_query(
    loan_id: int, today: date, kinds: tuple[HoldKind, ...] = PAUSING
) -> Select[tuple[LoanHold]]:
    return (
        select(LoanHold)
        .where(
            LoanHold.loan_id == loan_id,
            LoanHold.kind.in_(kinds),
            LoanHold.resolved_at.is_(None),
            or_(LoanHold.until.is_(None), LoanHold.until > today),
        )
        .order_by(LoanHold.id)
    )


def _pausing(session: Session, loan_id: int, today: date) -> LoanHold | None:
    return session.scalars(_open_query(loan_id, today)).first()


def _until(kind: HoldKind, until: date | None, today: date) -> date | None:
    if kind is not HoldKind.HARDSHIP:
        return None
    if until is None or until <= today:
        raise InvalidInput("A hardship pause ends on a day after today.", code="date_past")
    if (until - today).days > MAX_PAUSE_DAYS:
        raise InvalidInput("A hardship pause lasts at most a year.", code="date_far")
    return until


def _pause(
    session: Session,
    loan: Loan,
    actor: Actor | None,
    kind: HoldKind,
    note: str,
    until: date | None,
    today: date,
) -> HoldView:
    """Add the hold, withdraw what it makes untrue, audit: one transaction (the caller's)."""
    require_active(loan)
    held = _pausing(session, loan.id, today)
    if held is not None:
        raise Conflict(
            f"Loan {loan.loan_number} is already paused ({held.kind}).", code="loan_on_hold"
        )
    hold = LoanHold(
        loan_id=loan.id,
        kind=kind,
        note=note,
        opened_by_id=actor.staff_id if actor else None,
        opened_at=clock.utcnow(),
        until=until,
    )
    session.add(hold)
    ledger.touch(loan, actor)
    withdrawn = len(withdraw_for_loan(session, loan=loan, reason=_WITHDRAW[kind]))
    session.flush()
    audit(
        session,
        actor=actor,
        action=AuditAction.LOAN_DISPUTED if kind is HoldKind.DISPUTE else AuditAction.LOAN_PAUSED,
        target_type="loan",
        target_id=loan.id,
        details={
            "loan_number": loan.loan_number,
            "hold_id": hold.id,
            "note": note,
            "until": until,
            "withdrawn": withdrawn,
            "via": "staff" if actor else "sms",
        },
    )
    log.info("loan %s on hold (%s), %s withdrawn", loan.loan_number, kind, withdrawn)
    return _view(session, hold, loan.loan_number, withdrawn)


def open_hold(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    kind: HoldKind,
    note: str,
    today: date,
    until: date | None = None,
    expected_version: int | None = None,
) -> HoldView:
    """Dispute a loan, or pause it for hardship until a day (agents: their own loans)."""
    if kind not in PAUSING:
        raise InvalidInput("Only a dispute or a hardship pause can be opened here.", code="kind")
    why = _note(note)
    end = _until(kind, until, today)
    loan = find_loan(session, actor=actor, loan_number=loan_number, lock=True)
    refuse_stale(loan, expected_version)
    return _pause(session, loan, actor, kind, why, end, today)


def dispute_by_borrower(
    session: Session, *, loan_id: int, note: str, today: date
) -> HoldView | None:
    """The borrower texted DISPUTE about this loan: dispute it (None when already paused)."""
    loan = session.scalars(select(Loan).where(Loan.id == loan_id).with_for_update(of=Loan)).one()
    if loan.state is not LoanState.ACTIVE or loan.archived_at is not None:
        return None
    if _pausing(session, loan.id, today) is not None:
        return None
    return _pause(session, loan, None, HoldKind.DISPUTE, note[:500] or "DISPUTE", None, today)


def resolve_hold(
    session: Session,
    *,
    actor: Actor,
    loan_number: str,
    outcome: HoldOutcome,
    reason: str,
    today: date,
    kind: HoldKind | None = None,
) -> HoldView:
    """A manager resolves the loan's open hold (the oldest pausing one unless kind names one)."""
    require_role(actor, Role.MANAGER, "resolve disputes")
    why = _note(reason, "reason")
    loan = find_loan(session, actor=actor, loan_number=loan_number, lock=True)
    kinds = (kind,) if kind is not None else (*PAUSING, HoldKind.PAYMENT)
    hold = session.scalars(_open_query(loan.id, today, kinds)).first()
    if hold is None:
        raise Conflict(f"Loan {loan.loan_number} has nothing to resolve.", code="no_hold")
    if outcome not in _OUTCOMES[HoldKind(hold.kind)]:
        allowed = " or ".join(o.value for o in _OUTCOMES[HoldKind(hold.kind)])
        raise InvalidInput(f"A {hold.kind} is resolved as {allowed}.", code="outcome")
    if hold.kind == HoldKind.PAYMENT and outcome is HoldOutcome.UPHELD and hold.payment_id:
        # The money never reached the agency: the existing reversal, audited as ever.
        payments.reverse_payment(
            session,
            actor=actor,
            payment_id=hold.payment_id,
            reason=f"borrower denied paying: {why}",
            today=today,
        )
    hold.resolved_at, hold.resolved_by_id = clock.utcnow(), actor.staff_id
    hold.outcome, hold.resolution_note = outcome, why
    ledger.touch(loan, actor)
    audit(
        session,
        actor=actor,
        action=AuditAction.HOLD_RESOLVED,
        target_type="loan",
        target_id=loan.id,
        details={
            "loan_number": loan.loan_number,
            "hold_id": hold.id,
            "kind": hold.kind,
            "outcome": outcome.value,
            "reason": why,
        },
    )
    session.flush()
    log.info("loan %s hold %s resolved: %s", loan.loan_number, hold.id, outcome)
    return _view(session, hold, loan.loan_number)


def current_holds(session: Session, *, loan_id: int, today: date) -> list[HoldView]:
    """The loan's open holds (pausing ones and denied payments), oldest first, for its card."""
    loan_number = session.scalar(select(Loan.loan_number).where(Loan.id == loan_id)) or ""
    stmt = _open_query(loan_id, today, (*PAUSING, HoldKind.PAYMENT))
    return [_view(session, h, loan_number) for h in session.scalars(stmt)]


def held_loans(session: Session, *, actor: Actor, today: date, limit: int = 20) -> list[HoldView]:
    """Open holds on the loans actor sees, oldest first (for /today)."""
    stmt = scope_live_loans(
        select(LoanHold, Loan.loan_number)
        .join(Loan, Loan.id == LoanHold.loan_id)
        .where(
            LoanHold.resolved_at.is_(None),
            or_(LoanHold.until.is_(None), LoanHold.until > today),
        ),
        actor,
    )
    rows = session.execute(stmt.order_by(LoanHold.opened_at, LoanHold.id).limit(limit))
    return [_view(session, hold, number) for hold, number in rows]
