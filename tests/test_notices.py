"""Payment and loan-closed notices: queued once, off by setting, never to opted-out borrowers."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import clock
from db.agency import Agency
from db.models import Message, MessageKind, MessageStatus, PaymentMethod
from db.money import format_money
from db.services.collection.payments import pay_and_notify, record_payment
from db.services.errors import Conflict, InvalidInput, NotFound
from db.services.sms.notices import notice_text, payment_notice
from db.sms_text import Encoding, encoding, segments
from tests.factories import actor, make_borrower, make_loan

AGENCY = "Test Agency"
TODAY = clock.utcnow().date()


@pytest.fixture
def loan(session: Session, agent):
    borrower = make_borrower(session, phone=f"+9196{random.randrange(10**8):08d}")
    return make_loan(
        session,
        agent=agent,
        borrower=borrower,
        principal=Decimal("5000.00"),
        loan_number=f"NT-{uuid.uuid4().hex[:8].upper()}",
    )


def _pay(session: Session, agent, loan, amount: str):
    return record_payment(
        session,
        actor=actor(agent),
        loan_number=loan.loan_number,
        amount=Decimal(amount),
        today=TODAY,
        method=PaymentMethod.CASH,
    )


def _notice(session: Session, loan, paid, **kw):
    args = dict(
        loan_id=loan.id,
        payment_id=paid.payment_id,
        amount=paid.amount,
        outstanding=paid.outstanding,
        closed=paid.closed,
        agency=Agency(name=AGENCY),
        notify_payment=True,
        notify_closed=True,
    )
    return payment_notice(session, **(args | kw))


def _count(session: Session, loan) -> int:
    return session.scalar(
        select(func.count()).select_from(Message).where(Message.loan_id == loan.id)
    )


def test_payment_notice_is_queued_once_per_payment(session: Session, agent, loan) -> None:
    paid = _pay(session, agent, loan, "1500")
    info = _notice(session, loan, paid)
    assert info.kind is MessageKind.NOTICE and info.status is MessageStatus.QUEUED
    assert info.idempotency_key == f"notice:pay:{paid.payment_id}"
    assert (info.to, info.borrower_id, info.loan_id) == (
        loan.borrower.phone,
        loan.borrower_id,
        loan.id,
    )
    assert info.body == (
        f"Payment of INR 1500.00 received for loan {loan.loan_number}; "
        f"balance INR 3500.00. - {AGENCY}"
    )
    assert encoding(info.body) is Encoding.GSM7 and "₹" not in info.body
    assert _notice(session, loan, paid) is None
    assert _count(session, loan) == 1
    second = _notice(session, loan, _pay(session, agent, loan, "500"))
    assert "balance INR 3000.00" in second.body and _count(session, loan) == 2


def test_the_closing_payment_sends_the_closed_notice(session: Session, agent, loan) -> None:
    paid = _pay(session, agent, loan, "5000")
    assert paid.closed
    info = _notice(session, loan, paid)
    assert info.idempotency_key == f"notice:closed:{loan.id}"
    assert f"Loan {loan.loan_number} is fully paid and closed. Thank you." in info.body
    assert encoding(info.body) is Encoding.GSM7


def test_settings_turn_notices_off(session: Session, agent, loan) -> None:
    paid = _pay(session, agent, loan, "100")
    assert _notice(session, loan, paid, notify_payment=False) is None
    assert _count(session, loan) == 0
    closing = _pay(session, agent, loan, "4900")
    assert _notice(session, loan, closing, notify_payment=False, notify_closed=False) is None
    # Closed notices off, payment notices on: an ordinary notice with a zero balance.
    info = _notice(session, loan, closing, notify_closed=False)
    assert info.idempotency_key == f"notice:pay:{closing.payment_id}"
    assert "balance INR 0.00" in info.body and _count(session, loan) == 1


def test_opted_out_borrower_gets_no_notice(session: Session, agent, loan) -> None:
    loan.borrower.opted_out_at = clock.utcnow()
    session.flush()
    assert _notice(session, loan, _pay(session, agent, loan, "100")) is None
    assert _count(session, loan) == 0


def test_bad_amount_or_loan_is_refused(session: Session, agent, loan) -> None:
    paid = _pay(session, agent, loan, "100")
    with pytest.raises(InvalidInput):
        _notice(session, loan, paid, amount=Decimal("-100"))
    with pytest.raises(NotFound):
        payment_notice(
            session,
            loan_id=-1,
            payment_id=paid.payment_id,
            amount=Decimal("1"),
            outstanding=Decimal("0"),
            closed=False,
            agency=Agency(name=AGENCY),
            notify_payment=True,
            notify_closed=True,
        )


_amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000000"), places=2)


@given(amount=_amounts, outstanding=_amounts, closed=st.booleans())
def test_notice_text_is_gsm7_with_exact_amounts(
    amount: Decimal, outstanding: Decimal, closed: bool
) -> None:
    body = notice_text(
        loan_number="LN-2024-000123",
        amount=amount,
        outstanding=outstanding,
        closed=closed,
        agency=Agency(name="Sharma Recovery Services"),
    )
    assert encoding(body) is Encoding.GSM7
    assert f"Payment of {format_money(amount, Agency(), plain=True)} received" in body
    assert (f"balance {format_money(outstanding, Agency(), plain=True)}." in body) is not closed
    assert segments(body) == 1


def test_pay_and_notify_records_the_payment_and_queues_its_notice(
    session: Session, agent, loan, settings
) -> None:
    cfg = settings.model_copy(update={"agency_name": AGENCY, "notify_payment_received": True})
    paid = pay_and_notify(
        session,
        actor=actor(agent),
        loan_number=loan.loan_number,
        amount=Decimal("1000.00"),
        expected_version=loan.version,
        today=TODAY,
        settings=cfg,
    )
    assert (paid.amount, paid.outstanding, paid.closed) == (
        Decimal("1000.00"),
        Decimal("4000.00"),
        False,
    )
    [notice] = session.scalars(select(Message).where(Message.loan_id == loan.id))
    assert notice.kind is MessageKind.NOTICE and AGENCY in notice.body
    assert paid.receipt_number == f"R-{clock.utcnow().year}-{paid.payment_id}"
    assert f"receipt {paid.receipt_number}" in notice.body
    assert (
        "If you did not pay this, reply NO." in notice.body and "balance INR 4000.00" in notice.body
    )
    off = cfg.model_copy(update={"notify_payment_received": False})
    with pytest.raises(Conflict):  # the version it was shown at is gone: nothing is paid
        pay_and_notify(
            session,
            actor=actor(agent),
            loan_number=loan.loan_number,
            amount=Decimal("1.00"),
            expected_version=1,
            today=TODAY,
            settings=off,
        )
    assert _count(session, loan) == 1


@given(amount=_amounts, outstanding=_amounts, closed=st.booleans())
def test_a_notice_with_its_receipt_fits_one_gsm7_segment(
    amount: Decimal, outstanding: Decimal, closed: bool
) -> None:
    body = notice_text(
        loan_number="LN-2024-000123",
        amount=amount,
        outstanding=outstanding,
        closed=closed,
        agency=Agency(name="Sharma Recovery Services"),
        receipt="R-2030-1234567890",
    )
    assert encoding(body) is Encoding.GSM7 and segments(body) == 1
    assert "receipt R-2030-1234567890" in body and "If you did not pay this, reply NO." in body
    assert f"{format_money(amount, Agency(), plain=True)} received" in body
