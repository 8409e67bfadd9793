"""Loan guards (db/services/loans/guards.py): the checks every loan service shares."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from db import clock
from db.models import LoanState, Role
from db.services.collection import payments
from db.services.errors import Conflict, InvalidInput, NotFound
from db.services.loans import guards
from tests.factories import actor, make_loan, make_staff

TODAY = date(2026, 3, 15)
D = Decimal


def test_check_owed_says_what_is_left_and_writes_nothing(session, agent):
    loan = make_loan(session, agent=agent, principal=D("1000.00"))
    left = guards.check_owed(
        session, actor=actor(agent), loan_number=loan.loan_number, amount=D("400.00"), code="x"
    )
    assert left == D("600.00") and loan.outstanding == D("1000.00") and loan.version == 1
    with pytest.raises(InvalidInput) as err:
        guards.check_owed(
            session,
            actor=actor(agent),
            loan_number=loan.loan_number,
            amount=D("1000.01"),
            code="overpay",
        )
    assert (err.value.code, err.value.params["owed"]) == ("overpay", D("1000.00"))


def test_check_owed_refuses_a_closed_loan_and_a_loan_not_theirs(session, agent, agent_b):
    loan = make_loan(session, agent=agent)
    with pytest.raises(NotFound):
        guards.check_owed(
            session, actor=actor(agent_b), loan_number=loan.loan_number, amount=D("1"), code="x"
        )
    loan.state = LoanState.CLOSED
    session.flush()
    with pytest.raises(Conflict) as err:
        guards.check_owed(
            session, actor=actor(agent), loan_number=loan.loan_number, amount=D("1"), code="x"
        )
    assert err.value.code == "loan_not_active"


def test_a_loan_locked_for_a_change_must_not_be_archived(session, agent):
    admin = actor(make_staff(session, role=Role.ADMIN))
    loan = make_loan(session, agent=agent)
    loan.archived_at = clock.utcnow()
    session.flush()
    assert guards.find_loan(session, actor=admin, loan_number=loan.loan_number) is loan
    with pytest.raises(Conflict) as err:
        guards.find_loan(session, actor=admin, loan_number=loan.loan_number, lock=True)
    assert err.value.code == "loan_archived"
    found = guards.find_loan(
        session, actor=admin, loan_number=loan.loan_number, lock=True, archived=True
    )
    assert found is loan


def test_refuse_stale_compares_versions_only_when_given(session, agent):
    loan = make_loan(session, agent=agent)
    guards.refuse_stale(loan, None)
    guards.refuse_stale(loan, loan.version)
    with pytest.raises(Conflict) as err:
        guards.refuse_stale(loan, loan.version + 1)
    assert (err.value.code, err.value.params["version"]) == ("stale", loan.version)


def test_find_payment_and_loan_checks_who_may_see_it(session, agent, agent_b):
    loan = make_loan(session, agent=agent, principal=D("1000.00"))
    paid = payments.record_payment(
        session, actor=actor(agent), loan_number=loan.loan_number, amount=D("10"), today=TODAY
    )
    payment, found = guards.find_payment_and_loan(
        session, actor=actor(agent), payment_id=paid.payment_id
    )
    assert (payment.id, found.id) == (paid.payment_id, loan.id)
    for who, pid in ((agent_b, paid.payment_id), (agent, 10**9)):
        with pytest.raises(NotFound):
            guards.find_payment_and_loan(session, actor=actor(who), payment_id=pid)


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (D("0"), "amount_not_positive"),
        (D("1.001"), "amount_decimals"),
        (D("NaN"), "amount_format"),
        (D("101"), "amount_too_large"),
    ],
)
def test_check_amount_refusals(amount, code):
    with pytest.raises(InvalidInput) as err:
        guards.check_amount(amount, max_amount=D("100"))
    assert err.value.code == code
