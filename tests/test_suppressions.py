"""Suppressions: Twilio's codes sorted, the unreachable streak, lifts by START and by admins."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from db import clock
from db.agency import Agency
from db.failures import FailureClass, StreakRule
from db.models import (
    AuditEvent,
    Borrower,
    Message,
    MessageKind,
    Role,
    Suppression,
    SuppressionKind,
    UnreachableStreak,
)
from db.services.errors import AccessDenied, Conflict, NotFound
from db.services.sms import inbound, outbox, suppressions
from scheduler import twilio_codes
from tests.factories import actor, make_borrower, make_staff

K = SuppressionKind
RULE = StreakRule(limit=3, days=7)


def _phone() -> str:
    return f"+9196{random.randrange(10**8):08d}"


def _sent(session: Session, phone: str, borrower_id: int | None = None) -> str:
    """A message to phone handed to Twilio; its SID."""
    sid = f"SM{uuid.uuid4().hex}"
    info = outbox.queue_message(
        session,
        to=phone,
        body="Hi",
        kind=MessageKind.NOTICE,
        idempotency_key=f"t:{sid}",
        borrower_id=borrower_id,
    )
    assert outbox.mark_sent(session, message_id=info.id, sid=sid, segments=1)
    return sid


def _report(session: Session, phone: str, status: str, code: str | None = None) -> None:
    outbox.apply_status(
        session,
        sid=_sent(session, phone),
        status=status,
        error_code=code,
        source="callback",
        failure=twilio_codes.failure(code) if code else None,
        rule=RULE,
    )


def _suppression(session: Session, phone: str) -> Suppression | None:
    return session.get(Suppression, phone, populate_existing=True)


def _start(session: Session, phone: str):
    return inbound.handle_inbound(
        session,
        provider_sid=f"SM{uuid.uuid4().hex}",
        from_phone=phone,
        to_phone=None,
        body="START",
        agency=Agency(name="Test Agency"),
        today=clock.utcnow().date(),
    )


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("21211", FailureClass.PERMANENT),
        ("21614", FailureClass.PERMANENT),
        ("30004", FailureClass.PERMANENT),
        ("30005", FailureClass.PERMANENT),
        ("30006", FailureClass.PERMANENT),
        ("30003", FailureClass.TEMPORARY),
        ("30008", FailureClass.TEMPORARY),
        ("21610", FailureClass.OPT_OUT),
        ("21408", FailureClass.MESSAGE),
        ("30007", FailureClass.MESSAGE),
        ("30034", FailureClass.MESSAGE),
        ("99999", FailureClass.MESSAGE),
        (None, FailureClass.MESSAGE),
    ],
)
def test_twilio_codes_are_sorted(code, kind) -> None:
    assert twilio_codes.classify(code) is kind


def test_a_permanent_code_suppresses_at_once(session: Session) -> None:
    phone = _phone()
    _report(session, phone, "undelivered", "30006")
    row = _suppression(session, phone)
    assert (row.kind, row.error_code, row.reason) == (
        K.PERMANENT,
        "30006",
        "landline or unreachable carrier",
    )


def test_a_message_code_suppresses_nothing(session: Session) -> None:
    phone = _phone()
    _report(session, phone, "undelivered", "30007")
    assert _suppression(session, phone) is None
    assert session.get(UnreachableStreak, phone) is None


def test_temporary_failures_suppress_only_on_a_streak(session: Session) -> None:
    phone = _phone()
    _report(session, phone, "undelivered", "30003")
    _report(session, phone, "undelivered", "30008")
    assert _suppression(session, phone) is None
    assert session.get(UnreachableStreak, phone).failures == 2
    _report(session, phone, "undelivered", "30003")
    row = _suppression(session, phone)
    assert (row.kind, row.error_code) == (K.UNREACHABLE, "30003")
    assert "3 times in a row" in row.reason


def test_a_delivered_message_resets_the_streak(session: Session) -> None:
    phone = _phone()
    for _ in range(2):
        _report(session, phone, "undelivered", "30003")
    _report(session, phone, "delivered")
    assert session.get(UnreachableStreak, phone) is None
    for _ in range(2):
        _report(session, phone, "undelivered", "30003")
    assert _suppression(session, phone) is None


def test_failures_older_than_the_window_start_a_new_streak(session: Session) -> None:
    phone = _phone()
    for _ in range(2):
        _report(session, phone, "undelivered", "30003")
    clock.advance(timedelta(days=RULE.days, minutes=1))
    _report(session, phone, "undelivered", "30003")
    assert _suppression(session, phone) is None
    assert session.get(UnreachableStreak, phone, populate_existing=True).failures == 1


def test_the_streak_limit_comes_from_the_settings(session: Session, settings) -> None:
    phone = _phone()
    two = settings.model_copy(update={"sms_unreachable_limit": 2})
    for _ in range(2):
        twilio_codes.apply_status(
            session,
            sid=_sent(session, phone),
            status="undelivered",
            error_code="30003",
            source="callback",
            settings=two,
        )
    assert _suppression(session, phone).kind == K.UNREACHABLE


def test_21610_for_a_number_nobody_has_is_an_opt_out_suppression(session: Session) -> None:
    phone = _phone()
    _report(session, phone, "failed", "21610")
    assert _suppression(session, phone).kind == K.OPT_OUT


def test_21610_for_a_borrower_opts_them_out_without_a_suppression(session: Session) -> None:
    borrower = make_borrower(session, phone=_phone())
    sid = _sent(session, borrower.phone, borrower.id)
    outbox.apply_status(
        session,
        sid=sid,
        status="failed",
        error_code="21610",
        source="cb",
        failure=twilio_codes.failure("21610"),
        rule=RULE,
    )
    session.expire_all()
    assert session.get(Borrower, borrower.id).opted_out_at is not None
    assert _suppression(session, borrower.phone) is None


def _audits(session: Session, phone: str) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "suppression_lifted", AuditEvent.target_id == phone
            )
        )
    )


def test_start_lifts_an_unreachable_suppression_with_history_and_audit(session) -> None:
    borrower = make_borrower(session, phone=_phone())
    suppressions.suppress(
        session,
        phone=borrower.phone,
        kind=K.UNREACHABLE,
        reason="unreachable handset, 5 times in a row",
        error_code="30003",
    )
    result = _start(session, borrower.phone)
    assert result.reply_queued
    assert _suppression(session, borrower.phone) is None
    [lift] = suppressions.lift_history(session, phone=borrower.phone)
    assert (lift.via, lift.kind, lift.lifted_by_id) == ("start", K.UNREACHABLE, None)
    assert lift.suppressed_reason == "unreachable handset, 5 times in a row"
    [row] = _audits(session, borrower.phone)
    assert row.staff_id is None and row.details["via"] == "start"


def test_start_lifts_an_opt_out_of_an_unknown_number(session: Session) -> None:
    phone = _phone()
    suppressions.suppress(
        session, phone=phone, kind=K.OPT_OUT, reason="unsubscribed", error_code="21610"
    )
    assert not _start(session, phone).reply_queued  # a stranger still gets no reply
    assert _suppression(session, phone) is None


def test_start_does_not_lift_a_permanent_suppression(session: Session) -> None:
    borrower = make_borrower(session, phone=_phone())
    suppressions.suppress(
        session,
        phone=borrower.phone,
        kind=K.PERMANENT,
        reason="unknown number (not in service)",
        error_code="30005",
    )
    _start(session, borrower.phone)
    assert _suppression(session, borrower.phone).kind == K.PERMANENT
    assert suppressions.lift_history(session, phone=borrower.phone) == []


def test_an_admin_lifts_with_a_reason_audited(session: Session) -> None:
    admin = actor(make_staff(session, role=Role.ADMIN))
    phone = _phone()
    _report(session, phone, "undelivered", "30005")
    lifted = suppressions.lift(session, actor=admin, phone=phone, reason="new SIM, same number")
    assert (lifted.via, lifted.lifted_by_id, lifted.reason) == (
        "admin",
        admin.staff_id,
        "new SIM, same number",
    )
    assert _suppression(session, phone) is None
    [row] = _audits(session, phone)
    assert row.staff_id == admin.staff_id and row.details["reason"] == "new SIM, same number"
    # Suppressed again later, lifted again: the history keeps both.
    _report(session, phone, "undelivered", "30005")
    suppressions.lift(session, actor=admin, phone=phone)
    assert [h.via for h in suppressions.lift_history(session, phone=phone)] == ["admin", "admin"]


def test_an_admin_cannot_undo_an_opt_out_and_others_cannot_lift(session: Session) -> None:
    admin = actor(make_staff(session, role=Role.ADMIN))
    manager = actor(make_staff(session, role=Role.MANAGER))
    phone, dead = _phone(), _phone()
    suppressions.suppress(
        session, phone=phone, kind=K.OPT_OUT, reason="unsubscribed", error_code="21610"
    )
    suppressions.suppress(
        session, phone=dead, kind=K.PERMANENT, reason="landline", error_code="30006"
    )
    with pytest.raises(Conflict):
        suppressions.lift(session, actor=admin, phone=phone)
    with pytest.raises(AccessDenied):
        suppressions.lift(session, actor=manager, phone=dead)
    with pytest.raises(NotFound):
        suppressions.lift(session, actor=admin, phone=_phone())
    assert _suppression(session, phone) and _suppression(session, dead)
    assert _audits(session, phone) == [] and _audits(session, dead) == []


def test_a_lifted_number_is_texted_again(session: Session, settings) -> None:
    from scheduler import policy

    admin = actor(make_staff(session, role=Role.ADMIN))
    phone = _phone()
    _report(session, phone, "undelivered", "21211")
    info = outbox.queue_message(
        session,
        to=phone,
        body="Hello",
        kind=MessageKind.REPLY,
        idempotency_key=f"t:{uuid.uuid4().hex}",
    )
    m = outbox.MessageInfo.of(session.get(Message, info.id))
    assert policy.decide(session, message=m, now=clock.utcnow(), settings=settings).kind == (
        policy.DecisionKind.SUPPRESS
    )
    suppressions.lift(session, actor=admin, phone=phone)
    assert policy.decide(session, message=m, now=clock.utcnow(), settings=settings).kind == (
        policy.DecisionKind.SEND
    )
