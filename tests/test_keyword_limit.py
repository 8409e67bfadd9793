"""Keyword answers (HELP / BAL / START) are rate limited per number; the rest are recorded."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import clock
from db.agency import Agency
from db.models import Borrower, InboundMessage, LoanEvent, Message, MessageKind
from db.services.sms.inbound import handle_inbound
from tests.factories import make_borrower, make_loan


def _phone() -> str:
    return f"+9193{random.randrange(10**8):08d}"


def _sms(session: Session, phone: str, body: str, per_hour: int = 3):
    return handle_inbound(
        session,
        provider_sid=f"SM{uuid.uuid4().hex}",
        from_phone=phone,
        to_phone=None,
        body=body,
        agency=Agency(name="Test Agency", phone="+919000000001"),
        today=clock.utcnow().date(),
        replies_per_hour=per_hour,
    )


def _replies(session: Session, phone: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(Message)
        .where(Message.to_phone == phone, Message.kind == MessageKind.REPLY)
    )


def _state(session: Session, inbound_id: int) -> str | None:
    return session.get(InboundMessage, inbound_id, populate_existing=True).reply_state


def test_the_fourth_help_in_an_hour_is_recorded_not_answered(session: Session) -> None:
    phone = _phone()  # a stranger: HELP floods usually come from unknown numbers
    answered = [_sms(session, phone, "HELP") for _ in range(3)]
    assert all(r.reply_queued for r in answered)
    fourth = _sms(session, phone, "HELP")
    assert not fourth.reply_queued
    assert _replies(session, phone) == 3
    assert _state(session, fourth.inbound_id) == "rate_limited"
    assert [_state(session, r.inbound_id) for r in answered] == ["queued"] * 3

    clock.advance(timedelta(minutes=61))
    again = _sms(session, phone, "HELP")
    assert again.reply_queued and _replies(session, phone) == 4


def test_bal_and_start_share_the_limit_and_start_still_opts_in(session: Session, agent) -> None:
    borrower = make_borrower(session, phone=_phone(), opted_out_at=clock.utcnow())
    loan = make_loan(session, agent=agent, borrower=borrower)
    for body in ("BAL", "HELP"):
        assert _sms(session, borrower.phone, body, per_hour=2).reply_queued
    start = _sms(session, borrower.phone, "START", per_hour=2)
    assert not start.reply_queued
    session.expire_all()
    assert session.get(Borrower, borrower.id).opted_out_at is None  # it took effect all the same
    event = session.scalars(
        select(LoanEvent).where(LoanEvent.loan_id == loan.id).order_by(LoanEvent.id.desc())
    ).first()
    assert event.after["reply"] == "rate_limited"


def test_stop_takes_effect_beyond_the_limit(session: Session) -> None:
    borrower = make_borrower(session, phone=_phone())
    for _ in range(3):
        _sms(session, borrower.phone, "HELP", per_hour=1)
    _sms(session, borrower.phone, "STOP", per_hour=1)
    session.expire_all()
    assert session.get(Borrower, borrower.id).opted_out_at is not None


def test_the_limit_is_per_number(session: Session) -> None:
    first, second = _phone(), _phone()
    assert _sms(session, first, "HELP", per_hour=1).reply_queued
    assert not _sms(session, first, "HELP", per_hour=1).reply_queued
    assert _sms(session, second, "HELP", per_hour=1).reply_queued


async def test_webhook_helps_beyond_the_setting_are_stored_unanswered(settings, committed) -> None:
    from scheduler import web
    from tests.test_web import PUBLIC, _asgi_client, _post, _settings

    limited = _settings(settings, PUBLIC).model_copy(update={"sms_keyword_replies_per_hour": 2})
    app = web.build_web_app(limited, committed, unknown_sid_waits=(0.01,))
    phone = _phone()
    async with _asgi_client(app) as client:
        for _ in range(3):
            response = await _post(
                client,
                web.INBOUND_PATH,
                {
                    "MessageSid": f"SM{uuid.uuid4().hex}",
                    "From": phone,
                    "To": "+15005550006",
                    "Body": "HELP",
                },
            )
            assert response.status_code == 200
    with committed() as s:
        states = s.scalars(
            select(InboundMessage.reply_state)
            .where(InboundMessage.from_phone == phone)
            .order_by(InboundMessage.id)
        ).all()
        assert states == ["queued", "queued", "rate_limited"]
        assert _replies(s, phone) == 2
