"""Payments: allocation, overpayment, closing, reversal, stale buttons, access; a property test."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from db.agency import Agency
from db.models import (
    AuditEvent,
    Frequency,
    Loan,
    LoanEvent,
    LoanEventKind,
    LoanState,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    Role,
)
from db.services.audit.write import AuditAction
from db.services.collection import ledger
from db.services.collection import payments as svc
from db.services.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tests.factories import actor, make_loan, make_staff

TODAY = date(2026, 3, 15)
D = Decimal


@pytest.fixture
def agent(session):
    return make_staff(session, role=Role.AGENT, name="Asha Agent")


@pytest.fixture
def manager(session):
    return make_staff(session, role=Role.MANAGER, name="Mira Manager")


def _loan(session, agent, principal="3000.00", count=3, first_due=TODAY):
    return make_loan(
        session,
        agent=agent,
        principal=D(principal),
        count=count,
        frequency=Frequency.WEEKLY,
        first_due=first_due,
    )


def _events(session, loan, kind):
    stmt = select(LoanEvent).where(LoanEvent.loan_id == loan.id, LoanEvent.kind == kind)
    return list(session.scalars(stmt.order_by(LoanEvent.id)))


def _audits(session, action):
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action.value)))


def _paid(loan):
    return {i.seq: (i.fee_paid, i.amount_paid) for i in loan.installments}


def _pay(session, staff, loan, amount, **kw):
    return svc.record_payment(
        session,
        actor=actor(staff),
        loan_number=loan.loan_number,
        amount=D(amount),
        today=TODAY,
        **kw,
    )


def test_partial_payment_goes_to_the_oldest_installment_and_is_recorded(session, agent):
    loan = _loan(session, agent)
    version = loan.version
    result = _pay(session, agent, loan, "500.00", method=PaymentMethod.UPI, note="at shop")
    assert result.allocations == ((1, D("0.00"), D("500.00")),)
    assert (result.amount, result.outstanding, result.closed) == (D("500.00"), D("2500.00"), False)
    assert result.loan.amount_paid == D("500.00") and result.loan.version == version + 1
    assert loan.installments[0].amount_paid == D("500.00") and loan.installments[0].paid_at is None
    event = _events(session, loan, LoanEventKind.PAYMENT)[0]
    assert event.staff_id == agent.id and event.note == "at shop"
    assert event.before["outstanding"] == "3000.00" and event.after["outstanding"] == "2500.00"
    row = _audits(session, AuditAction.PAYMENT_RECORDED)[0]
    assert row.staff_id == agent.id and row.target_id == loan.loan_number
    assert row.details["payment_id"] == result.payment_id and row.details["method"] == "upi"


def test_allocation_is_oldest_first_and_fee_before_amount(session, agent):
    loan = _loan(session, agent)
    loan.installments[0].fee_due = D("50.00")
    loan.installments[1].fee_due = D("20.00")
    ledger.refresh(loan)
    session.flush()
    result = _pay(session, agent, loan, "1100.00")
    assert result.allocations == ((1, D("50.00"), D("1000.00")), (2, D("20.00"), D("30.00")))
    first, second, _ = loan.installments
    assert first.paid_at is not None and second.paid_at is None
    assert loan.next_due_date == second.due_date
    rows = session.scalars(
        select(PaymentAllocation)
        .where(PaymentAllocation.payment_id == result.payment_id)
        .order_by(PaymentAllocation.id)
    ).all()
    assert [(r.installment_id, r.fee_amount, r.amount) for r in rows] == [
        (first.id, D("50.00"), D("1000.00")),
        (second.id, D("20.00"), D("30.00")),
    ]


def test_overpayment_is_refused_with_the_amount_owed_and_writes_nothing(session, agent):
    loan = _loan(session, agent)
    _pay(session, agent, loan, "1000.00")
    with pytest.raises(InvalidInput) as err:
        _pay(session, agent, loan, "2000.01")
    assert err.value.code == "overpay" and err.value.params["owed"] == D("2000.00")
    assert str(err.value) == f"That is more than the ₹2,000.00 owed on {loan.loan_number}."
    assert (
        session.scalar(select(func.count()).select_from(Payment).where(Payment.loan_id == loan.id))
        == 1
    )
    assert len(_events(session, loan, LoanEventKind.PAYMENT)) == 1
    assert loan.amount_paid == D("1000.00")


def test_refusals_show_sums_in_the_agencys_currency_and_locale(session, agent):
    loan = _loan(session, agent)
    usd = Agency(currency="USD", locale="en_US")
    with pytest.raises(InvalidInput) as err:
        _pay(session, agent, loan, "3000.01", agency=usd)
    assert str(err.value) == f"That is more than the $3,000.00 owed on {loan.loan_number}."
    with pytest.raises(InvalidInput) as err:
        _pay(session, agent, loan, "1.5", agency=Agency(currency="JPY"))
    assert err.value.code == "amount_decimals" and err.value.params["places"] == 0
    with pytest.raises(InvalidInput) as err:
        _pay(session, agent, loan, "200000000", agency=usd)
    assert str(err.value) == "That amount is above the limit of $100,000,000.00."


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (D("0"), "amount_not_positive"),
        (D("-5"), "amount_not_positive"),
        (D("1.005"), "amount_decimals"),
        (D("NaN"), "amount_format"),
        (1.5, "amount_format"),
        (D("200000000"), "amount_too_large"),
    ],
)
def test_bad_amounts_are_refused(session, agent, amount, code):
    loan = _loan(session, agent)
    with pytest.raises(InvalidInput) as err:
        svc.record_payment(
            session, actor=actor(agent), loan_number=loan.loan_number, amount=amount, today=TODAY
        )
    assert err.value.code == code
    assert loan.amount_paid == 0


def test_paying_to_zero_closes_the_loan_and_further_payments_are_refused(session, agent):
    loan = _loan(session, agent)
    result = _pay(session, agent, loan, "3000.00")
    assert result.closed and result.outstanding == 0 and result.loan.state == LoanState.CLOSED
    assert loan.closed_at is not None and loan.next_due_date is None
    closed = _events(session, loan, LoanEventKind.CLOSED)
    assert len(closed) == 1 and closed[0].staff_id == agent.id and closed[0].note == "paid in full"
    assert all(i.paid_at is not None for i in loan.installments)
    with pytest.raises(Conflict) as err:
        _pay(session, agent, loan, "1.00")
    assert err.value.code == "loan_not_active"


def test_reversal_restores_balances_exactly_and_keeps_both_rows(session, agent, manager):
    loan = _loan(session, agent)
    loan.installments[1].fee_due = D("25.00")
    ledger.refresh(loan)
    first = _pay(session, agent, loan, "1500.00")
    _pay(session, agent, loan, "1000.00")
    # 1500 = 1000 on #1, the 25 fee and 475 on #2; then 1000 = 525 on #2 and 475 on #3.
    assert _paid(loan) == {1: (0, D("1000")), 2: (D("25"), D("1000")), 3: (0, D("475"))}
    result = svc.reverse_payment(
        session,
        actor=actor(manager),
        payment_id=first.payment_id,
        reason="  cheque bounced ",
        today=TODAY,
    )
    assert _paid(loan) == {1: (0, 0), 2: (0, D("525")), 3: (0, D("475"))}
    assert result.amount == D("-1500.00") and result.outstanding == D("2025.00")
    assert result.allocations == ((1, 0, D("-1000.00")), (2, D("-25.00"), D("-475.00")))
    original, reversal = (
        session.get(Payment, first.payment_id),
        session.get(Payment, result.payment_id),
    )
    assert original.reversed_at is not None and original.amount == D("1500.00")
    assert reversal.reverses_id == original.id and reversal.note == "cheque bounced"
    assert loan.installments[0].paid_at is None and loan.next_due_date == TODAY
    event = _events(session, loan, LoanEventKind.PAYMENT_REVERSED)[0]
    assert event.staff_id == manager.id and event.after["outstanding"] == "2025.00"
    row = _audits(session, AuditAction.PAYMENT_REVERSED)[0]
    assert row.target_id == str(original.id) and row.details["reason"] == "cheque bounced"


def test_a_payment_is_reversed_once_and_a_reversal_never(session, agent, manager):
    loan = _loan(session, agent)
    paid = _pay(session, agent, loan, "100.00")
    rev = svc.reverse_payment(
        session, actor=actor(manager), payment_id=paid.payment_id, reason="typo", today=TODAY
    )
    for payment_id, code in (
        (paid.payment_id, "already_reversed"),
        (rev.payment_id, "is_reversal"),
    ):
        with pytest.raises(Conflict) as err:
            svc.reverse_payment(
                session, actor=actor(manager), payment_id=payment_id, reason="again", today=TODAY
            )
        assert err.value.code == code
    assert (
        loan.amount_paid == 0 and len(_events(session, loan, LoanEventKind.PAYMENT_REVERSED)) == 1
    )


def test_only_managers_reverse_and_a_reason_is_required(session, agent, manager):
    loan = _loan(session, agent)
    paid = _pay(session, agent, loan, "100.00")
    with pytest.raises(AccessDenied):
        svc.reverse_payment(
            session, actor=actor(agent), payment_id=paid.payment_id, reason="mine", today=TODAY
        )
    with pytest.raises(InvalidInput) as err:
        svc.reverse_payment(
            session, actor=actor(manager), payment_id=paid.payment_id, reason="   ", today=TODAY
        )
    assert err.value.code == "text_empty"
    with pytest.raises(NotFound):
        svc.reverse_payment(
            session, actor=actor(manager), payment_id=10**9, reason="x", today=TODAY
        )
    assert session.get(Payment, paid.payment_id).reversed_at is None


def test_reversing_a_payment_on_a_closed_loan_reopens_it(session, agent, manager):
    loan = _loan(session, agent)
    _pay(session, agent, loan, "1000.00")
    last = _pay(session, agent, loan, "2000.00")
    assert last.closed
    result = svc.reverse_payment(
        session,
        actor=actor(manager),
        payment_id=last.payment_id,
        reason="bank recalled it",
        today=TODAY,
    )
    assert not result.closed and result.loan.state == LoanState.ACTIVE
    assert loan.state == LoanState.ACTIVE and loan.closed_at is None
    assert result.outstanding == D("2000.00")
    reopened = _events(session, loan, LoanEventKind.REOPENED)
    assert len(reopened) == 1 and reopened[0].staff_id == manager.id
    assert _pay(session, agent, loan, "50.00").outstanding == D("1950.00")


def test_a_stale_version_is_refused_and_changes_nothing(session, agent):
    loan = _loan(session, agent)
    shown = loan.version
    _pay(session, agent, loan, "100.00", expected_version=shown)
    with pytest.raises(Conflict) as err:
        _pay(session, agent, loan, "100.00", expected_version=shown)
    assert err.value.code == "stale"
    assert loan.amount_paid == D("100.00")
    assert len(_events(session, loan, LoanEventKind.PAYMENT)) == 1


def test_an_agent_cannot_pay_or_list_another_agents_loan(session, agent, manager):
    other = make_staff(session, role=Role.AGENT)
    loan = _loan(session, other)
    with pytest.raises(NotFound) as err:
        _pay(session, agent, loan, "10.00")
    assert str(err.value) == f"No loan {loan.loan_number} found."
    with pytest.raises(NotFound):
        svc.list_payments(session, actor=actor(agent), loan_number=loan.loan_number)
    assert loan.amount_paid == 0
    assert _pay(session, manager, loan, "10.00").outstanding == D("2990.00")


def test_list_payments_newest_first_with_reversals(session, agent, manager):
    loan = _loan(session, agent)
    first = _pay(session, agent, loan, "100.00")
    _pay(session, agent, loan, "200.00")
    rev = svc.reverse_payment(
        session, actor=actor(manager), payment_id=first.payment_id, reason="duplicate", today=TODAY
    )
    rows = svc.list_payments(session, actor=actor(agent), loan_number=loan.loan_number.lower())
    assert [r.amount for r in rows] == [D("-100.00"), D("200.00"), D("100.00")]
    assert rows[0].reverses_id == first.payment_id and rows[0].id == rev.payment_id
    assert rows[2].reversed and not rows[1].reversed
    assert rows[0].recorded_by == "Mira Manager" and rows[1].recorded_by == "Asha Agent"


# --- property: balances never go negative, every rupee is accounted for --------------------

amounts = st.decimals(min_value=D("0.01"), max_value=D("1.00"), places=2)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    principal=st.decimals(min_value=D("1.00"), max_value=D("50000.00"), places=2),
    count=st.integers(min_value=1, max_value=6),
    fees=st.lists(st.decimals(min_value=D("0"), max_value=D("500"), places=2), max_size=6),
    data=st.data(),
)
def test_random_payments_and_reversals_keep_the_books_exact(
    session, agent, manager, principal, count, fees, data
):
    savepoint = session.begin_nested()
    try:
        loan = _loan(
            session,
            agent,
            principal=str(principal),
            count=count,
            first_due=TODAY - timedelta(days=30),
        )
        for inst, fee in zip(loan.installments, fees, strict=False):
            inst.fee_due = fee
        ledger.refresh(loan)
        for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
            _step(session, agent, manager, loan, data)
            _assert_books(session, loan)
    finally:
        savepoint.rollback()


def _step(session, agent, manager, loan, data):
    live = session.scalars(
        select(Payment.id).where(
            Payment.loan_id == loan.id, Payment.reversed_at.is_(None), Payment.reverses_id.is_(None)
        )
    ).all()
    if live and data.draw(st.booleans()):
        svc.reverse_payment(
            session,
            actor=actor(manager),
            payment_id=data.draw(st.sampled_from(live)),
            reason="property",
            today=TODAY,
        )
    elif loan.state == LoanState.ACTIVE:
        share = data.draw(amounts)
        amount = max(D("0.01"), (loan.outstanding * share).quantize(D("0.01")))
        _pay(session, agent, loan, str(min(amount, loan.outstanding)))


def _assert_books(session, loan):
    for inst in loan.installments:
        assert 0 <= inst.amount_paid <= inst.amount_due
        assert 0 <= inst.fee_paid <= inst.fee_due
    assert loan.outstanding >= 0
    payments = session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).where(Payment.loan_id == loan.id)
    )
    allocated = session.execute(
        select(
            func.coalesce(func.sum(PaymentAllocation.amount), 0),
            func.coalesce(func.sum(PaymentAllocation.fee_amount), 0),
        )
        .join(Payment, Payment.id == PaymentAllocation.payment_id)
        .where(Payment.loan_id == loan.id)
    ).one()
    assert D(str(payments)).quantize(D("0.01")) == loan.amount_paid
    assert D(str(allocated[0] + allocated[1])).quantize(D("0.01")) == loan.amount_paid
    assert loan.amount_paid == sum((i.amount_paid + i.fee_paid for i in loan.installments), 0)
    assert (loan.state == LoanState.CLOSED) == (loan.outstanding == 0)


def test_two_agents_paying_in_full_at_once_pay_once(committed):
    with committed() as s:
        staff = make_staff(s, role=Role.MANAGER)
        number = _loan(s, staff).loan_number
        s.commit()
    barrier, outcomes = threading.Barrier(2), []

    def pay() -> None:
        with committed() as s:
            barrier.wait()
            try:
                svc.record_payment(
                    s, actor=actor(staff), loan_number=number, amount=D("3000.00"), today=TODAY
                )
                s.commit()
                outcomes.append("paid")
            except Conflict as exc:
                outcomes.append(exc.code)

    threads = [threading.Thread(target=pay) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["loan_not_active", "paid"]
    with committed() as s:
        paid = select(func.count()).select_from(Payment).join(Loan, Loan.id == Payment.loan_id)
        assert s.scalar(paid.where(Loan.loan_number == number)) == 1


def test_receipts_of_payments_recorded_at_once_are_unique(committed):
    """Eight payments on four loans from four threads at once: eight different receipts."""
    with committed() as s:
        staff = make_staff(s, role=Role.MANAGER)
        numbers = [_loan(s, staff).loan_number for _ in range(4)]
        s.commit()
    barrier, receipts, errors = threading.Barrier(4), [], []

    def pay(number: str) -> None:
        with committed() as s:
            barrier.wait()
            try:
                for _ in range(2):
                    done = svc.record_payment(
                        s, actor=actor(staff), loan_number=number, amount=D("10.00"), today=TODAY
                    )
                    s.commit()
                    receipts.append(done.receipt_number)
            except Exception as exc:  # SQLite has one writer: it may say "locked"
                errors.append(exc)

    threads = [threading.Thread(target=pay, args=(n,)) for n in numbers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(set(receipts)) == len(receipts) and receipts
    assert all(r.startswith("R-") for r in receipts)
    if committed.kw["bind"].dialect.name == "postgresql":
        assert not errors and len(receipts) == 8
    with committed() as s:
        stored = s.scalars(
            select(Payment.receipt_number).where(Payment.receipt_number.is_not(None))
        ).all()
        assert len(set(stored)) == len(stored)
