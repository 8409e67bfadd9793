"""The sending policy: opt-out, suppression, expiry, quiet hours per time zone, the cap."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from db.models import Borrower, Message, MessageKind, MessageStatus, Suppression
from db.services.sms.outbox import MessageInfo
from scheduler.policy import DecisionKind, decide, next_window
from tests.factories import make_borrower

S, K = MessageStatus, MessageKind
_keys = itertools.count(1)
# 03:00 UTC: 08:30 in Kolkata (open), 22:00 the evening before in New York (closed).
EARLY = datetime(2030, 1, 15, 3, 0, tzinfo=UTC)
# 14:00 UTC: 19:30 in Kolkata (closed), 09:00 in New York (open).
LATE = datetime(2030, 1, 15, 14, 0, tzinfo=UTC)
KOLKATA, NEW_YORK = "Asia/Kolkata", "America/New_York"


def _msg(
    session: Session,
    borrower: Borrower,
    kind: MessageKind = K.REMINDER,
    status: MessageStatus = S.SENDING,
    sent_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> MessageInfo:
    row = Message(
        to_phone=borrower.phone,
        body="Hi",
        kind=kind,
        borrower_id=borrower.id,
        idempotency_key=f"pol:{next(_keys)}",
        status=status,
        attempts=1,
        send_after=EARLY - timedelta(days=30),
        expires_at=expires_at,
        sending_at=sent_at or EARLY,
        sent_at=sent_at,
    )
    session.add(row)
    session.flush()
    return MessageInfo.of(row)


@pytest.mark.parametrize(
    ("tz", "now", "opens"),
    [
        (KOLKATA, EARLY, None),
        (NEW_YORK, EARLY, datetime(2030, 1, 15, 13, 0, tzinfo=UTC)),
        (KOLKATA, LATE, datetime(2030, 1, 16, 2, 30, tzinfo=UTC)),
        (NEW_YORK, LATE, None),
        (None, EARLY, None),
    ],
)
def test_quiet_hours_in_the_borrowers_own_zone(session, settings, tz, now, opens):
    borrower = make_borrower(session, timezone=tz)
    decision = decide(session, message=_msg(session, borrower), now=now, settings=settings)
    if opens is None:
        assert decision.kind is DecisionKind.SEND
    else:
        assert (decision.kind, decision.until, decision.reason) == (
            DecisionKind.WAIT,
            opens,
            "quiet hours",
        )


def test_two_zones_at_the_same_instant_get_different_answers(session, settings):
    india = make_borrower(session, timezone=KOLKATA)
    usa = make_borrower(session, timezone=NEW_YORK)
    for now, (first, second) in ((EARLY, ("send", "wait")), (LATE, ("wait", "send"))):
        got = [
            decide(session, message=_msg(session, b), now=now, settings=settings).kind
            for b in (india, usa)
        ]
        assert got == [DecisionKind(first), DecisionKind(second)]


def test_an_unknown_zone_falls_back_to_the_agency_zone(session, settings):
    borrower = make_borrower(session, timezone="Mars/Olympus")
    decision = decide(session, message=_msg(session, borrower), now=LATE, settings=settings)
    assert decision.kind is DecisionKind.WAIT


def test_next_window_handles_the_boundaries(settings):
    tz = ZoneInfo(KOLKATA)
    opens = datetime(2030, 1, 15, 8, 0, tzinfo=tz)
    assert next_window(opens, tz, settings.allowed_window) is None
    assert next_window(opens - timedelta(seconds=1), tz, settings.allowed_window) == opens
    closes = datetime(2030, 1, 15, 19, 0, tzinfo=tz)
    assert next_window(closes, tz, settings.allowed_window) == opens + timedelta(days=1)


def test_waiting_past_the_expiry_suppresses(session, settings):
    borrower = make_borrower(session, timezone=KOLKATA)
    message = _msg(session, borrower, expires_at=LATE + timedelta(hours=2))
    decision = decide(session, message=message, now=LATE, settings=settings)
    assert (decision.kind, decision.reason) == (DecisionKind.SUPPRESS, "expired in quiet hours")


def test_an_expired_message_is_suppressed(session, settings):
    borrower = make_borrower(session, timezone=KOLKATA)
    message = _msg(session, borrower, expires_at=EARLY)
    decision = decide(session, message=message, now=EARLY, settings=settings)
    assert (decision.kind, decision.reason) == (DecisionKind.SUPPRESS, "expired")


@pytest.mark.parametrize("kind", list(K))
def test_opted_out_borrowers_get_nothing_not_even_replies(session, settings, kind):
    borrower = make_borrower(session, timezone=KOLKATA, opted_out_at=EARLY - timedelta(days=1))
    decision = decide(session, message=_msg(session, borrower, kind), now=EARLY, settings=settings)
    assert (decision.kind, decision.reason) == (DecisionKind.SUPPRESS, "opted out")


def test_a_suppressed_number_is_suppressed_with_its_reason(session, settings):
    borrower = make_borrower(session, timezone=KOLKATA)
    session.add(Suppression(phone=borrower.phone, reason="landline", error_code="30006"))
    session.flush()
    decision = decide(session, message=_msg(session, borrower), now=EARLY, settings=settings)
    assert decision.kind is DecisionKind.SUPPRESS and "landline" in decision.reason


def test_replies_ignore_quiet_hours(session, settings):
    borrower = make_borrower(session, timezone=KOLKATA)
    reply = _msg(session, borrower, K.REPLY)
    assert decide(session, message=reply, now=LATE, settings=settings).kind is DecisionKind.SEND


@pytest.mark.parametrize("kind", [K.BROADCAST, K.NOTICE])
def test_broadcasts_and_notices_keep_quiet_hours(session, settings, kind):
    borrower = make_borrower(session, timezone=KOLKATA)
    message = _msg(session, borrower, kind)
    assert decide(session, message=message, now=LATE, settings=settings).kind is DecisionKind.WAIT


def _sent_reminders(session, borrower, *ages_days: float) -> None:
    for age in ages_days:
        _msg(session, borrower, status=S.DELIVERED, sent_at=EARLY - timedelta(days=age))


def test_the_cap_holds_a_reminder_until_the_oldest_counted_one_ages_out(session, settings):
    borrower = make_borrower(session, timezone=KOLKATA)
    _sent_reminders(session, borrower, 1, 2, 5, 8)  # the 8-day-old one is outside 7 days
    decision = decide(session, message=_msg(session, borrower), now=EARLY, settings=settings)
    assert decision.kind is DecisionKind.WAIT and decision.reason == "frequency cap"
    assert decision.until == EARLY - timedelta(days=5) + timedelta(days=7)


def test_under_the_cap_a_reminder_goes(session, settings):
    borrower = make_borrower(session, timezone=KOLKATA)
    _sent_reminders(session, borrower, 1, 2, 8)
    decision = decide(session, message=_msg(session, borrower), now=EARLY, settings=settings)
    assert decision.kind is DecisionKind.SEND


def test_the_cap_past_the_expiry_suppresses(session, settings):
    borrower = make_borrower(session, timezone=KOLKATA)
    _sent_reminders(session, borrower, 1, 2, 3)
    message = _msg(session, borrower, expires_at=EARLY + timedelta(hours=48))
    decision = decide(session, message=message, now=EARLY, settings=settings)
    assert decision.kind is DecisionKind.SUPPRESS and "frequency cap" in decision.reason


@pytest.mark.parametrize("kind", [K.BROADCAST, K.NOTICE, K.REPLY])
def test_the_cap_applies_to_reminders_only(session, settings, kind):
    borrower = make_borrower(session, timezone=KOLKATA)
    _sent_reminders(session, borrower, 1, 2, 3)
    message = _msg(session, borrower, kind)
    assert decide(session, message=message, now=EARLY, settings=settings).kind is DecisionKind.SEND


def test_other_kinds_do_not_use_up_the_reminder_cap(session, settings):
    borrower = make_borrower(session, timezone=KOLKATA)
    for _ in range(5):
        _msg(session, borrower, K.BROADCAST, status=S.SENT, sent_at=EARLY - timedelta(hours=1))
    decision = decide(session, message=_msg(session, borrower), now=EARLY, settings=settings)
    assert decision.kind is DecisionKind.SEND


def test_reminders_claimed_together_let_the_first_ones_through(session, settings):
    borrower = make_borrower(session, timezone=KOLKATA)
    batch = [_msg(session, borrower) for _ in range(4)]  # all SENDING at once
    kinds = [decide(session, message=m, now=EARLY, settings=settings).kind for m in batch]
    assert kinds == [DecisionKind.SEND] * 3 + [DecisionKind.WAIT]
