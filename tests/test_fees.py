"""Late fees: fixed and percent, grace days, once per installment, in batches."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select

from db.config import LateFeeKind
from db.models import Frequency, LoanEvent, LoanEventKind, LoanState
from db.services.collection import fees, payments
from tests.factories import actor, make_loan

TODAY = date(2026, 3, 15)
D = Decimal
FIXED = {"kind": LateFeeKind.FIXED, "amount": D("100"), "percent": D("0"), "grace_days": 3}
PERCENT = {"kind": LateFeeKind.PERCENT, "amount": D("0"), "percent": D("2.5"), "grace_days": 3}


def _loan(session, agent):
    """Three weekly installments of 1000 due 14 days ago, 7 days ago and today."""
    return make_loan(
        session,
        agent=agent,
        principal=D("3000.00"),
        count=3,
        frequency=Frequency.WEEKLY,
        first_due=TODAY - timedelta(days=14),
    )


def _fees(loan):
    return [i.fee_due for i in loan.installments]


def _events(session, loan):
    stmt = select(LoanEvent).where(
        LoanEvent.loan_id == loan.id, LoanEvent.kind == LoanEventKind.LATE_FEE
    )
    return list(session.scalars(stmt))


def test_fixed_fee_on_each_installment_past_the_grace_days(session, agent):
    loan = _loan(session, agent)
    version = loan.version
    assert fees.apply_late_fees(session, today=TODAY, **FIXED) == 2
    assert _fees(loan) == [D("100.00"), D("100.00"), D("0.00")]
    assert loan.fees_charged == D("200.00") and loan.outstanding == D("3200.00")
    assert loan.version == version + 1 and loan.updated_by_id is None
    assert all(i.fee_applied_at is not None for i in loan.installments[:2])
    (event,) = _events(session, loan)
    assert event.staff_id is None and event.after["installments"] == "1:100.00,2:100.00"
    assert (event.before["outstanding"], event.after["outstanding"]) == ("3000.00", "3200.00")


def test_grace_days_are_honoured_at_the_boundary(session, agent):
    loan = _loan(session, agent)
    # Due 7 days ago with 7 grace days: due_date + grace == today, not yet late.
    assert fees.apply_late_fees(session, today=TODAY, **(FIXED | {"grace_days": 7})) == 1
    assert _fees(loan) == [D("100.00"), D("0.00"), D("0.00")]
    assert (
        fees.apply_late_fees(
            session, today=TODAY + timedelta(days=1), **(FIXED | {"grace_days": 7})
        )
        == 1
    )
    assert _fees(loan) == [D("100.00"), D("100.00"), D("0.00")]


def test_percent_fee_is_on_what_the_installment_still_owes(session, agent):
    loan = _loan(session, agent)
    payments.record_payment(
        session, actor=actor(agent), loan_number=loan.loan_number, amount=D("333.33"), today=TODAY
    )
    assert fees.apply_late_fees(session, today=TODAY, **PERCENT) == 2
    # 2.5 % of 666.67 = 16.66675 -> 16.67; 2.5 % of 1000 = 25.
    assert _fees(loan) == [D("16.67"), D("25.00"), D("0.00")]
    assert loan.outstanding == D("3000.00") - D("333.33") + D("41.67")


def test_running_twice_or_on_the_next_day_adds_nothing(session, agent):
    loan = _loan(session, agent)
    assert fees.apply_late_fees(session, today=TODAY, **FIXED) == 2
    assert fees.apply_late_fees(session, today=TODAY, **FIXED) == 0
    assert fees.apply_late_fees(session, today=TODAY + timedelta(days=1), **FIXED) == 0
    assert _fees(loan) == [D("100.00"), D("100.00"), D("0.00")]
    assert len(_events(session, loan)) == 1


def test_none_or_a_zero_fee_changes_nothing(session, agent):
    loan = _loan(session, agent)
    version = loan.version
    assert (
        fees.apply_late_fees(
            session,
            today=TODAY,
            kind=LateFeeKind.NONE,
            amount=D("100"),
            percent=D("5"),
            grace_days=0,
        )
        == 0
    )
    assert fees.apply_late_fees(session, today=TODAY, **(FIXED | {"amount": D("0")})) == 0
    assert fees.apply_late_fees(session, today=TODAY, **(PERCENT | {"percent": D("0")})) == 0
    assert loan.fees_charged == 0 and loan.version == version
    assert all(i.fee_applied_at is None for i in loan.installments)
    assert _events(session, loan) == []


def test_paid_installments_and_inactive_loans_are_not_charged(session, agent):
    paid = _loan(session, agent)
    payments.record_payment(
        session, actor=actor(agent), loan_number=paid.loan_number, amount=D("1000.00"), today=TODAY
    )
    closed, written_off = _loan(session, agent), _loan(session, agent)
    closed.state, written_off.state = LoanState.CLOSED, LoanState.WRITTEN_OFF
    session.flush()
    assert fees.apply_late_fees(session, today=TODAY, **FIXED) == 1
    assert _fees(paid) == [D("0.00"), D("100.00"), D("0.00")]
    assert closed.fees_charged == 0 and written_off.fees_charged == 0
    assert _events(session, closed) == [] and _events(session, written_off) == []


def test_a_payment_after_a_fee_pays_the_fee_first(session, agent):
    loan = _loan(session, agent)
    fees.apply_late_fees(session, today=TODAY, **FIXED)
    result = payments.record_payment(
        session, actor=actor(agent), loan_number=loan.loan_number, amount=D("1150.00"), today=TODAY
    )
    assert result.allocations == ((1, D("100.00"), D("1000.00")), (2, D("50.00"), D("0.00")))
    assert result.outstanding == D("2050.00")


def test_many_loans_are_charged_in_batches(session, agent, monkeypatch):
    monkeypatch.setattr(fees, "BATCH", 2)
    loans = [_loan(session, agent) for _ in range(5)]
    assert fees.apply_late_fees(session, today=TODAY, **FIXED) == 10
    assert all(ln.fees_charged == D("200.00") for ln in loans)
    assert all(len(_events(session, ln)) == 1 for ln in loans)
    assert fees.apply_late_fees(session, today=TODAY, **FIXED) == 0
