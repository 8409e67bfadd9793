"""Inbound SMS: keywords, storage once per SID, replies through the outbox, relay to agents."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import clock
from db.agency import Agency
from db.models import (
    Borrower,
    HoldKind,
    InboundMessage,
    LoanEvent,
    LoanEventKind,
    LoanHold,
    LoanState,
    Message,
    MessageKind,
    MessageStatus,
    PaymentMethod,
    StaffState,
)
from db.services.collection.payments import record_payment
from db.services.errors import InvalidInput
from db.services.sms import inbound, outbox
from db.services.sms.inbound import (
    Keyword,
    handle_inbound,
    keyword_of,
    mark_relayed,
    pending_relays,
)
from tests.factories import actor, make_borrower, make_loan, make_staff

AGENCY = "Test Agency"
AGENCY_PHONE = "+919000000001"
TODAY = clock.utcnow().date()


def _phone() -> str:
    # Random, so rows other test runs left in a shared database never collide.
    return f"+9197{random.randrange(10**8):08d}"


def _number() -> str:
    return f"IN-{uuid.uuid4().hex[:8].upper()}"


def _sms(session: Session, phone: str, body: str, sid: str | None = None, today: date = TODAY):
    return handle_inbound(
        session,
        provider_sid=sid or f"SM{uuid.uuid4().hex}",
        from_phone=phone,
        to_phone="+15005550006",
        body=body,
        agency=Agency(name=AGENCY, phone=AGENCY_PHONE),
        today=today,
    )


def _reply(session: Session, sid: str) -> Message | None:
    return session.scalar(select(Message).where(Message.idempotency_key == f"reply:{sid}"))


def _row(session: Session, inbound_id: int) -> InboundMessage:
    return session.get(InboundMessage, inbound_id, populate_existing=True)


@pytest.fixture
def agent(session: Session):
    staff = make_staff(session)
    staff.telegram_chat_id = staff.telegram_user_id + 1
    return staff


@pytest.fixture
def borrower(session: Session) -> Borrower:
    return make_borrower(session, phone=_phone(), name="Asha Devi")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", Keyword.STOP),
        (" stop ", Keyword.STOP),
        ("Stop.", Keyword.STOP),
        ("STOPALL", Keyword.STOP),
        ("unsubscribe", Keyword.STOP),
        ("Cancel", Keyword.STOP),
        ("END", Keyword.STOP),
        ("quit!", Keyword.STOP),
        ("Stop texting me", Keyword.STOP),
        ("START", Keyword.START),
        ("unstop", Keyword.START),
        ("help", Keyword.HELP),
        ("Help?", Keyword.HELP),
        ("bal", Keyword.BAL),
        ("dispute", Keyword.DISPUTE),
        ("Dispute: I repaid in March", Keyword.DISPUTE),
        ("Balance", Keyword.BAL),
        ("End of the month I will pay", None),
        ("Cancel the visit please", None),
        ("start paying next week", None),
        ("help me I lost my job", None),
        ("YES", None),
        ("", None),
        ("stopping by later", None),
    ],
)
def test_keyword_is_the_word_alone_or_a_leading_stop(body: str, expected) -> None:
    assert keyword_of(body) == expected


def test_stop_opts_the_borrower_out_without_a_reply(session: Session, agent, borrower) -> None:
    loan = make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    sid = f"SM{uuid.uuid4().hex}"
    result = _sms(session, borrower.phone, "stop", sid)
    assert result.keyword is Keyword.STOP and not result.reply_queued and result.relay is None
    session.refresh(borrower)
    assert borrower.opted_out_at is not None
    assert _reply(session, sid) is None
    row = _row(session, result.inbound_id)
    # Kept on the loan for its history, but a bare keyword waits for no relay.
    assert (row.keyword, row.loan_id, row.borrower_id) == ("STOP", loan.id, borrower.id)
    assert row.relayed_at is not None
    event = session.scalar(select(LoanEvent).where(LoanEvent.loan_id == loan.id))
    assert event.kind is LoanEventKind.INBOUND_SMS and event.after["opted_out"] is True


def test_stop_in_a_sentence_opts_out_and_is_relayed(session: Session, agent, borrower) -> None:
    make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    result = _sms(session, borrower.phone, "STOP texting me, I paid on Monday")
    session.refresh(borrower)
    assert borrower.opted_out_at is not None
    assert result.relay is not None and result.relay.body == "STOP texting me, I paid on Monday"


def test_ordinary_words_do_not_opt_out(session: Session, agent, borrower) -> None:
    make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    result = _sms(session, borrower.phone, "End of the month I will pay")
    session.refresh(borrower)
    assert result.keyword is None and borrower.opted_out_at is None
    assert result.relay is not None


def test_start_opts_back_in_and_confirms(session: Session, agent, borrower) -> None:
    loan = make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    borrower.opted_out_at = clock.utcnow() - timedelta(days=3)
    session.flush()
    sid = f"SM{uuid.uuid4().hex}"
    result = _sms(session, borrower.phone, "Start", sid)
    session.refresh(borrower)
    assert result.keyword is Keyword.START and result.reply_queued
    assert borrower.opted_out_at is None
    reply = _reply(session, sid)
    assert reply.kind is MessageKind.REPLY and reply.status is MessageStatus.QUEUED
    assert (reply.to_phone, reply.borrower_id, reply.loan_id) == (
        borrower.phone,
        borrower.id,
        loan.id,
    )
    assert AGENCY in reply.body and "STOP" in reply.body


def test_start_from_an_unknown_number_gets_no_reply(session: Session) -> None:
    sid = f"SM{uuid.uuid4().hex}"
    result = _sms(session, _phone(), "START", sid)
    assert not result.reply_queued and _reply(session, sid) is None


@pytest.mark.parametrize("known", [True, False])
def test_help_answers_with_the_agency_phone(session: Session, borrower, known: bool) -> None:
    sid = f"SM{uuid.uuid4().hex}"
    result = _sms(session, borrower.phone if known else _phone(), "HELP", sid)
    reply = _reply(session, sid)
    assert result.reply_queued and AGENCY_PHONE in reply.body and AGENCY in reply.body
    assert ("BAL" in reply.body) is known


def test_bal_lists_each_active_loan_with_its_outstanding(session: Session, agent, borrower) -> None:
    a = make_loan(
        session,
        agent=agent,
        borrower=borrower,
        loan_number="BAL-A" + _number()[3:],
        principal=Decimal("10000.00"),
    )
    b = make_loan(
        session,
        agent=agent,
        borrower=borrower,
        loan_number="BAL-B" + _number()[3:],
        principal=Decimal("2500.50"),
    )
    closed = make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    closed.state = LoanState.CLOSED
    record_payment(
        session,
        actor=actor(agent),
        loan_number=a.loan_number,
        amount=Decimal("1234.25"),
        today=TODAY,
        method=PaymentMethod.UPI,
    )
    sid = f"SM{uuid.uuid4().hex}"
    _sms(session, borrower.phone, "bal", sid)
    body = _reply(session, sid).body
    assert body == (
        f"{AGENCY}: outstanding {a.loan_number} INR 8765.75; {b.loan_number} INR 2500.50."
    )
    assert closed.loan_number not in body


def test_bal_without_active_loans(session: Session, borrower) -> None:
    sid = f"SM{uuid.uuid4().hex}"
    _sms(session, borrower.phone, "BAL", sid)
    assert _reply(session, sid).body == f"{AGENCY}: you have no active loans."


def test_bal_from_an_unknown_number_reveals_nothing(session: Session, agent) -> None:
    make_loan(
        session, agent=agent, borrower=make_borrower(session, phone=_phone()), loan_number=_number()
    )
    sid = f"SM{uuid.uuid4().hex}"
    result = _sms(session, _phone(), "BAL", sid)
    reply = _reply(session, sid)
    assert reply.body == f"{AGENCY}: we could not find an account for this number."
    assert reply.borrower_id is None and reply.loan_id is None and result.relay is None
    assert _row(session, result.inbound_id).borrower_id is None


def test_free_text_goes_to_the_most_overdue_loan_and_waits_for_relay(
    session: Session, agent, borrower
) -> None:
    newer = make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    overdue = make_loan(
        session,
        agent=agent,
        borrower=borrower,
        loan_number=_number(),
        first_due=TODAY - timedelta(days=20),
    )
    less = make_loan(
        session,
        agent=agent,
        borrower=borrower,
        loan_number=_number(),
        first_due=TODAY - timedelta(days=5),
    )
    result = _sms(session, borrower.phone, "I will pay on Friday, sorry for the delay")
    assert result.keyword is None and not result.reply_queued
    relay = result.relay
    assert relay is not None and _row(session, result.inbound_id).loan_id == overdue.id
    assert (relay.agent_id, relay.agent_chat_id) == (agent.id, agent.telegram_chat_id)
    assert (relay.borrower_name, relay.loan_number) == ("Asha Devi", overdue.loan_number)
    assert relay.body == "I will pay on Friday, sorry for the delay"
    assert relay.inbound_id in {r.inbound_id for r in pending_relays(session, limit=500)}
    assert {newer.id, less.id}.isdisjoint({_row(session, result.inbound_id).loan_id})
    assert mark_relayed(session, inbound_ids=[relay.inbound_id]) == 1
    assert relay.inbound_id not in {r.inbound_id for r in pending_relays(session, limit=500)}
    assert mark_relayed(session, inbound_ids=[relay.inbound_id]) == 0
    event = session.scalar(select(LoanEvent).where(LoanEvent.loan_id == overdue.id))
    assert event.kind is LoanEventKind.INBOUND_SMS and event.note.startswith("I will pay")


def test_without_overdue_loans_the_newest_active_loan_is_used(
    session: Session, agent, borrower
) -> None:
    make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    newest = make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    newest.created_at = clock.utcnow() + timedelta(seconds=5)
    session.flush()
    result = _sms(session, borrower.phone, "Who is this?")
    assert result.relay.loan_number == newest.loan_number


def test_relay_follows_the_current_agent_and_skips_disabled_ones(
    session: Session, agent, borrower
) -> None:
    loan = make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    result = _sms(session, borrower.phone, "Please call me")
    other = make_staff(session)  # no chat id yet: the user id is the private chat's id
    loan.agent_id = other.id
    session.flush()
    mine = {r.inbound_id: r for r in pending_relays(session, limit=500)}
    assert mine[result.inbound_id].agent_chat_id == other.telegram_user_id
    other.state = StaffState.DISABLED
    session.flush()
    assert result.inbound_id not in {r.inbound_id for r in pending_relays(session, limit=500)}


def test_unknown_number_free_text_is_stored_without_relay(session: Session) -> None:
    phone = _phone()
    result = _sms(session, phone, "hello?")
    row = _row(session, result.inbound_id)
    assert (row.from_phone, row.borrower_id, row.loan_id, result.relay) == (phone, None, None, None)


def test_the_same_provider_sid_is_stored_once(session: Session, agent, borrower) -> None:
    make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    sid = f"SM{uuid.uuid4().hex}"
    first = _sms(session, borrower.phone, "BAL", sid)
    again = _sms(session, borrower.phone, "BAL", sid)
    assert again.duplicate and again.inbound_id == first.inbound_id and not again.reply_queued
    count = session.scalar(
        select(func.count()).select_from(InboundMessage).where(InboundMessage.provider_sid == sid)
    )
    replies = session.scalar(
        select(func.count()).select_from(Message).where(Message.idempotency_key == f"reply:{sid}")
    )
    assert (count, replies) == (1, 1)


def test_body_is_cut_to_1600_characters_without_nul(session: Session, borrower) -> None:
    result = _sms(session, borrower.phone, "a\x00" + "b" * 2000)
    body = _row(session, result.inbound_id).body
    assert len(body) == inbound.MAX_BODY and "\x00" not in body and body.startswith("ab")


def test_local_format_sender_is_normalised(session: Session, borrower) -> None:
    local = borrower.phone.removeprefix("+91")
    result = _sms(session, local, "hi")
    assert _row(session, result.inbound_id).borrower_id == borrower.id


def test_missing_sid_and_bad_limit_are_refused(session: Session) -> None:
    with pytest.raises(InvalidInput):
        handle_inbound(
            session,
            provider_sid=" ",
            from_phone=_phone(),
            body="hi",
            agency=Agency(name=AGENCY),
            today=TODAY,
        )
    with pytest.raises(InvalidInput):
        pending_relays(session, limit=0)


def test_stop_and_start_each_write_one_audit_row(session: Session, agent, borrower) -> None:
    from db.models import AuditEvent
    from db.services.audit.write import AuditAction

    def audits(action: AuditAction) -> int:
        return session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == action.value, AuditEvent.target_id == str(borrower.id))
        )

    _sms(session, borrower.phone, "STOP")
    _sms(session, borrower.phone, "STOP")  # already out: nothing changes, nothing audited
    assert audits(AuditAction.BORROWER_OPTED_OUT) == 1
    _sms(session, borrower.phone, "START")
    assert audits(AuditAction.BORROWER_OPTED_IN) == 1


# --- DISPUTE (issue 11) -------------------------------------------------------------------


def test_dispute_by_sms_stops_reminders_answers_and_reaches_the_agent(
    session: Session, agent, borrower
) -> None:
    loan = make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    queued = outbox.queue_message(
        session,
        to=borrower.phone,
        body="due",
        kind=MessageKind.REMINDER,
        idempotency_key=f"dispute:{loan.id}",
        borrower_id=borrower.id,
        loan_id=loan.id,
    )
    sid = f"SM{uuid.uuid4().hex}"
    result = _sms(session, borrower.phone, "Dispute: I repaid in March", sid)
    assert result.keyword is Keyword.DISPUTE and result.reply_queued
    assert result.relay is not None and result.relay.agent_id == agent.id
    assert "dispute" in _reply(session, sid).body and loan.loan_number in _reply(session, sid).body
    assert session.get(Message, queued.id, populate_existing=True).status is MessageStatus.CANCELED
    hold = session.scalars(select(LoanHold).where(LoanHold.loan_id == loan.id)).one()
    assert hold.kind is HoldKind.DISPUTE and hold.opened_by_id is None
    assert "repaid in March" in hold.note


def test_dispute_replies_are_rate_limited(session: Session, agent, borrower) -> None:
    make_loan(session, agent=agent, borrower=borrower, loan_number=_number())
    results = [_sms(session, borrower.phone, "DISPUTE") for _ in range(5)]
    assert [r.reply_queued for r in results] == [True, True, True, False, False]
    assert session.scalar(select(func.count()).select_from(LoanHold)) >= 1
