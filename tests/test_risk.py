"""The risk score (issue 11): each part as documented, and the order of /today."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from db.models import Contact, ContactChannel, ContactOutcome, LoanState, Promise, PromiseState
from db.services import reports, risk
from tests.factories import actor, make_borrower, make_loan

TODAY = datetime.now(UTC).date()


def test_parts_add_up_as_documented(session, agent):
    loan = make_loan(
        session, agent=agent, principal=Decimal("50000.00"), first_due=TODAY - timedelta(days=45)
    )
    session.add_all(
        [
            Promise(
                loan_id=loan.id, amount=Decimal("1"), promised_date=TODAY, state=PromiseState.KEPT
            ),
            Promise(
                loan_id=loan.id, amount=Decimal("1"), promised_date=TODAY, state=PromiseState.BROKEN
            ),
            Contact(loan_id=loan.id, channel=ContactChannel.CALL, outcome=ContactOutcome.NO_ANSWER),
            Contact(loan_id=loan.id, channel=ContactChannel.CALL, outcome=ContactOutcome.PROMISED),
        ]
    )
    session.flush()
    got = risk.risk_of(session, loan=loan, today=TODAY)
    # 45 of 90 days: 20; its one installment late: 20; 1 of 2 broken: 10; 1 of 2 bad: 5;
    # 50,000 of 100,000 at stake: 5.
    assert got.parts == {"overdue": 20, "late": 20, "promises": 10, "contacts": 5, "stake": 5}
    assert got.score == 60 and not got.eligible


def test_a_borrower_who_repaid_on_time_is_eligible(session, agent):
    borrower = make_borrower(session)
    old = make_loan(session, agent=agent, borrower=borrower, first_due=TODAY - timedelta(days=30))
    inst = old.installments[0]
    inst.amount_paid, inst.paid_at = inst.principal_due, datetime.now(UTC) - timedelta(days=31)
    old.state = LoanState.CLOSED
    new = make_loan(session, agent=agent, borrower=borrower)
    session.flush()
    assert risk.risk_of(session, loan=new, today=TODAY).eligible
    inst.paid_at = datetime.now(UTC) - timedelta(days=1)  # paid 29 days late
    session.flush()
    assert not risk.risk_of(session, loan=new, today=TODAY).eligible


def test_today_puts_the_riskier_overdue_loan_first(session, agent):
    small = make_loan(
        session, agent=agent, principal=Decimal("100.00"), first_due=TODAY - timedelta(days=60)
    )
    big = make_loan(
        session, agent=agent, principal=Decimal("90000.00"), first_due=TODAY - timedelta(days=50)
    )
    items = reports.work_list(session, actor=actor(agent), today=TODAY, limit=50)
    order = [i.loan.id for i in items if i.loan.id in (small.id, big.id)]
    assert order == [big.id, small.id]


def test_the_card_line_names_each_part():
    from bot import texts

    line = texts.risk_line(60, {"overdue": 20, "late": 20, "promises": 0, "stake": 5}, True)
    assert line.startswith("📊 Risk 60/100: days late 20, late installments 20, amount at stake 5")
    assert "eligible for a new one" in line and "broken promises" not in line
