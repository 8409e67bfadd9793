"""A borrower's NO to a payment receipt (issue 11): which payment it denies, and when it is
only an ordinary reply."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select, update

from db import clock
from db.agency import Agency
from db.models import (
    AuditEvent,
    HoldKind,
    HoldOutcome,
    LoanHold,
    Message,
    MessageKind,
    Payment,
)
from db.services.collection import payments
from db.services.loans import holds
from db.services.sms.inbound import Keyword, handle_inbound
from tests.factories import actor, make_borrower, make_loan

TODAY = clock.utcnow().date()


def _sms(session, phone: str, body: str):
    return handle_inbound(
        session,
        provider_sid=f"SM{uuid.uuid4().hex}",
        from_phone=phone,
        body=body,
        agency=Agency(name="Test Agency"),
        today=TODAY,
    )


def _paid(session, agent, loan, settings, amount: str = "100.00", sent: bool = True):
    cfg = settings.model_copy(update={"notify_payment_received": True})
    done = payments.pay_and_notify(
        session,
        actor=actor(agent),
        loan_number=loan.loan_number,
        amount=Decimal(amount),
        expected_version=loan.version,
        today=TODAY,
        settings=cfg,
    )
    if sent:
        session.execute(
            update(Message)
            .where(Message.loan_id == loan.id, Message.kind == MessageKind.NOTICE)
            .values(sent_at=clock.utcnow())
        )
    return done


def _loan(session, agent):
    borrower = make_borrower(session, phone=f"+9197{uuid.uuid4().int % 10**8:08d}")
    return make_loan(session, agent=agent, borrower=borrower)


def test_no_denies_the_latest_receipted_payment_once(session, settings, agent):
    loan = _loan(session, agent)
    _paid(session, agent, loan, settings)
    second = _paid(session, agent, loan, settings, "50.00")
    first = _sms(session, loan.borrower.phone, "Not paid!")
    assert first.keyword is Keyword.NO and first.reply_queued
    assert first.relay is None  # not to the agent: the managers' relay takes it
    hold = session.scalars(select(LoanHold).where(LoanHold.loan_id == loan.id)).one()
    assert (hold.kind, hold.payment_id) == (HoldKind.PAYMENT, second.payment_id)
    assert second.receipt_number in hold.note
    again = _sms(session, loan.borrower.phone, "no")
    assert again.keyword is Keyword.NO
    assert (
        session.scalar(
            select(func.count()).select_from(LoanHold).where(LoanHold.loan_id == loan.id)
        )
        == 1
    )
    denied = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "payment_denied",
            AuditEvent.target_id == str(second.payment_id),
        )
    ).one()
    assert denied.details["receipt"] == second.receipt_number


def test_no_without_a_sent_receipt_is_an_ordinary_reply(session, settings, agent):
    loan = _loan(session, agent)
    _paid(session, agent, loan, settings, sent=False)  # the notice never left
    result = _sms(session, loan.borrower.phone, "NO")
    assert result.keyword is None and result.relay is not None
    assert (
        session.scalar(
            select(func.count()).select_from(LoanHold).where(LoanHold.loan_id == loan.id)
        )
        == 0
    )


def test_no_after_the_window_is_an_ordinary_reply(session, settings, agent):
    loan = _loan(session, agent)
    done = _paid(session, agent, loan, settings)
    old = clock.utcnow() - timedelta(days=8)
    session.execute(update(Payment).where(Payment.id == done.payment_id).values(paid_at=old))
    assert _sms(session, loan.borrower.phone, "NO").keyword is None


def test_confirmed_paid_keeps_the_payment_and_not_paid_reverses_it(
    session, settings, agent, manager
):
    loan = _loan(session, agent)
    done = _paid(session, agent, loan, settings)
    _sms(session, loan.borrower.phone, "NO")
    holds.resolve_hold(
        session,
        actor=actor(manager),
        loan_number=loan.loan_number,
        outcome=HoldOutcome.REJECTED,
        reason="signed slip in the office",
        today=TODAY,
    )
    assert session.get(Payment, done.payment_id).reversed_at is None
    _sms(session, loan.borrower.phone, "NO")  # denied again, this time upheld
    holds.resolve_hold(
        session,
        actor=actor(manager),
        loan_number=loan.loan_number,
        outcome=HoldOutcome.UPHELD,
        reason="the cash never reached us",
        today=TODAY,
    )
    session.expire_all()
    assert session.get(Payment, done.payment_id).reversed_at is not None
    assert session.get(type(loan), loan.id).amount_paid == Decimal("0.00")
