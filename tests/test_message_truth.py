"""Issue 9 item 3: a change to a loan or borrower withdraws, in its own transaction, the
queued SMS it makes untrue (CANCELED, with an event saying why); what stays true stays
queued, restamped with the loan's new version."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.agency import Agency
from db.config import LateFeeKind
from db.models import (
    Broadcast,
    BroadcastState,
    Installment,
    Loan,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    Role,
)
from db.services.approvals.decide import decide
from db.services.collection import fees, ledger, payments, promises
from db.services.loans import add as loans
from db.services.loans import archive as loan_archive
from db.services.loans.add import EditableField
from db.services.sms import inbound, outbox
from scheduler import jobs
from tests.factories import actor, make_borrower, make_loan, make_staff

S = MessageStatus
TODAY = date(2030, 1, 15)


def _queue(
    session: Session,
    loan: Loan,
    kind=MessageKind.REMINDER,
    *,
    broadcast=None,
    to: str | None = None,
) -> int:
    info = outbox.queue_message(
        session,
        to=to or loan.borrower.phone,
        body=f"{kind} about {loan.loan_number}",
        kind=kind,
        idempotency_key=f"t:{kind}:{loan.id}:{broadcast and broadcast.id}:{to}",
        borrower_id=loan.borrower_id,
        loan_id=loan.id,
        broadcast_id=broadcast.id if broadcast else None,
    )
    return info.id


def _broadcast(session: Session, template: str) -> Broadcast:
    b = Broadcast(audience={"kind": "all_active"}, template=template, state=BroadcastState.QUEUED)
    session.add(b)
    session.flush()
    return b


def _state(session: Session, message_id: int) -> tuple[MessageStatus, str | None]:
    """Status and the last event's detail, read from the database."""
    m = session.scalars(
        select(Message).where(Message.id == message_id).execution_options(populate_existing=True)
    ).one()
    last = session.scalars(
        select(MessageEvent.detail)
        .where(MessageEvent.message_id == message_id)
        .order_by(MessageEvent.id.desc())
        .limit(1)
    ).one()
    return S(m.status), last


def _withdrawn(session: Session, message_id: int, reason: str) -> None:
    assert _state(session, message_id) == (S.CANCELED, f"withdrawn: {reason}")


def _still_true(session: Session, message_id: int, loan: Loan) -> None:
    status, _ = _state(session, message_id)
    m = session.get(Message, message_id)
    assert status is S.QUEUED and m.loan_version == loan.version


@pytest.fixture
def loan(session, agent):
    return make_loan(
        session,
        agent=agent,
        principal=Decimal("3000.00"),
        count=3,
        first_due=TODAY - timedelta(days=5),
    )


def test_queued_messages_carry_the_loan_version_they_were_written_for(session, loan, settings):
    rid = _queue(session, loan)
    assert session.get(Message, rid).loan_version == loan.version
    planned = make_loan(session, agent=None, first_due=TODAY - timedelta(days=1))
    planned.version = 7
    session.flush()
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    [m] = session.scalars(select(Message).where(Message.loan_id == planned.id)).all()
    assert m.kind is MessageKind.REMINDER and m.loan_version == 7


def test_a_part_payment_withdraws_reminders_and_amount_broadcasts_only(session, loan, agent, today):
    reminder = _queue(session, loan)
    plain = _queue(
        session,
        loan,
        MessageKind.BROADCAST,
        broadcast=_broadcast(session, "Office closed on Monday. {agency}"),
    )
    stating = _queue(
        session,
        loan,
        MessageKind.BROADCAST,
        broadcast=_broadcast(session, "You owe {outstanding}. {agency}"),
    )
    notice = _queue(session, loan, MessageKind.NOTICE)
    payments.record_payment(
        session,
        actor=actor(agent),
        loan_number=loan.loan_number,
        amount=Decimal("500"),
        today=today,
    )
    _withdrawn(session, reminder, "amount_changed")
    _withdrawn(session, stating, "amount_changed")
    _still_true(session, plain, loan)
    _still_true(session, notice, loan)


def test_paying_off_withdraws_every_broadcast_and_reminder(session, loan, agent, today):
    reminder = _queue(session, loan)
    plain = _queue(
        session,
        loan,
        MessageKind.BROADCAST,
        broadcast=_broadcast(session, "Office closed on Monday. {agency}"),
    )
    result = payments.record_payment(
        session,
        actor=actor(agent),
        loan_number=loan.loan_number,
        amount=Decimal("3000"),
        today=today,
    )
    assert result.closed
    _withdrawn(session, reminder, "paid_off")
    _withdrawn(session, plain, "paid_off")


def test_reversing_a_payment_withdraws_its_receipt(session, loan, agent, manager, today):
    paid = payments.record_payment(
        session,
        actor=actor(agent),
        loan_number=loan.loan_number,
        amount=Decimal("500"),
        today=today,
    )
    notice = _queue(session, loan, MessageKind.NOTICE)
    payments.reverse_payment(
        session,
        actor=actor(manager),
        payment_id=paid.payment_id,
        reason="bounced cheque",
        today=today,
    )
    _withdrawn(session, notice, "payment_reversed")


def test_a_late_fee_withdraws_the_reminder(session, loan):
    reminder = _queue(session, loan)
    charged = fees.apply_late_fees(
        session,
        today=TODAY,
        kind=LateFeeKind.FIXED,
        amount=Decimal("50"),
        percent=Decimal("0"),
        grace_days=0,
    )
    assert charged >= 1
    _withdrawn(session, reminder, "amount_changed")


def test_closing_by_hand_withdraws(session, agent, today):
    loan = make_loan(session, agent=agent, principal=Decimal("100.00"))
    for inst in loan.installments:  # settled outside a payment (e.g. an imported book)
        inst.amount_paid = inst.principal_due
    ledger.refresh(loan)
    session.flush()
    reminder = _queue(session, loan)
    loans.close_loan(
        session,
        actor=actor(agent),
        loan_number=loan.loan_number,
        expected_version=None,
        today=today,
    )
    _withdrawn(session, reminder, "closed")


def test_writing_off_withdraws(session, loan, manager, today):
    reminder = _queue(session, loan)
    loans.write_off_loan(
        session,
        actor=actor(manager),
        loan_number=loan.loan_number,
        reason="borrower moved away",
        expected_version=None,
        today=today,
    )
    _withdrawn(session, reminder, "written_off")


def test_archiving_withdraws_everything_of_the_loan(session, loan, admin):
    reminder, notice = _queue(session, loan), _queue(session, loan, MessageKind.NOTICE)
    loan_archive.archive_loan(
        session, actor=actor(admin), loan_number=loan.loan_number, reason="entered twice"
    )
    _withdrawn(session, reminder, "archived")
    _withdrawn(session, notice, "archived")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (EditableField.NEXT_DUE_DATE, "2030-03-01", "due_date_changed"),
        (EditableField.PRINCIPAL, "4000", "amount_changed"),
    ],
)
def test_editing_what_a_reminder_states_withdraws_it(session, loan, agent, field, value, reason):
    reminder = _queue(session, loan)
    done = loans.edit_loan(
        session,
        actor=actor(agent),
        loan_number=loan.loan_number,
        field=field,
        value=value,
        expected_version=None,
        today=TODAY,
        reason="borrower's salary date moved",
    )
    if done.approval_id is not None:  # an agent's long move waits for approval (issue 11)
        boss = make_staff(session, role=Role.MANAGER)
        decide(session, actor=actor(boss), approval_id=done.approval_id, approve=True, today=TODAY)
    _withdrawn(session, reminder, reason)


def test_a_phone_correction_withdraws_what_was_addressed_to_the_old_number(session, agent, today):
    borrower = make_borrower(session)
    first = make_loan(session, agent=agent, borrower=borrower)
    second = make_loan(session, agent=agent, borrower=borrower)
    on_first, on_second = _queue(session, first), _queue(session, second, MessageKind.NOTICE)
    loans.edit_loan(
        session,
        actor=actor(agent),
        loan_number=first.loan_number,
        field=EditableField.BORROWER_PHONE,
        value="+919000012345",
        expected_version=None,
        today=today,
    )
    _withdrawn(session, on_first, "phone_changed")
    _withdrawn(session, on_second, "phone_changed")
    fresh = _queue(session, second)  # queued after the change: to the new number
    assert session.get(Message, fresh).to_phone == "+919000012345"
    _still_true(session, fresh, second)


@pytest.mark.parametrize(
    ("field", "value"),
    [(EditableField.BORROWER_ADDRESS, "12 New Road"), (EditableField.BORROWER_NAME, "Asha R")],
)
def test_an_edit_that_keeps_the_text_true_restamps_it(session, loan, agent, field, value, today):
    reminder = _queue(session, loan)
    before = loan.version
    loans.edit_loan(
        session,
        actor=actor(agent),
        loan_number=loan.loan_number,
        field=field,
        value=value,
        expected_version=None,
        today=today,
    )
    assert loan.version > before
    _still_true(session, reminder, loan)


def test_reassigning_and_promising_keep_the_reminder(session, loan, agent_b, manager, today):
    reminder = _queue(session, loan)
    loans.reassign_loan(
        session,
        actor=actor(manager),
        loan_number=loan.loan_number,
        agent_id=agent_b.id,
        today=today,
    )
    promises.record_promise(
        session,
        actor=actor(manager),
        loan_number=loan.loan_number,
        amount=Decimal("500"),
        promised_date=today + timedelta(days=3),
        today=today,
    )
    _still_true(session, reminder, loan)


def test_stop_withdraws_everything_queued_for_the_borrower(session, loan, settings):
    reminder, notice = _queue(session, loan), _queue(session, loan, MessageKind.NOTICE)
    inbound.handle_inbound(
        session,
        provider_sid="SMstop0001",
        from_phone=loan.borrower.phone,
        body="STOP",
        agency=Agency(name="Agency"),
        today=TODAY,
    )
    _withdrawn(session, reminder, "opted_out")
    _withdrawn(session, notice, "opted_out")


def test_a_refused_change_withdraws_nothing(session, loan, agent, today):
    reminder = _queue(session, loan)
    with pytest.raises(Exception):  # noqa: B017 - any refusal: the amount is above what is owed
        payments.record_payment(
            session,
            actor=actor(agent),
            loan_number=loan.loan_number,
            amount=Decimal("999999"),
            today=today,
        )
    assert _state(session, reminder)[0] is S.QUEUED
    assert (
        session.scalar(
            select(Installment.amount_paid).where(
                Installment.loan_id == loan.id, Installment.seq == 1
            )
        )
        == 0
    )
