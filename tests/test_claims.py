"""A worker's claim on a message: the lease, and writes fenced by worker id and attempt."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import clock
from db.models import Message, MessageEvent, MessageKind, MessageStatus
from db.services.sms import claims, outbox
from db.services.sms.claims import Claim
from tests.factories import make_borrower

S = MessageStatus
LEASE = timedelta(minutes=10)


def _claimed(session: Session, worker: str, at=None) -> outbox.ClaimedMessage:
    now = at or clock.utcnow()
    [m] = outbox.claim_due(session, now=now, limit=10, worker_id=worker, claimed_at=now)
    return m


def _queued(session: Session) -> outbox.MessageInfo:
    b = make_borrower(session)
    info = outbox.queue_message(
        session,
        to=b.phone,
        body="Hello",
        kind=MessageKind.NOTICE,
        idempotency_key="claims:1",
        borrower_id=b.id,
        send_after=clock.utcnow() - timedelta(minutes=1),
    )
    assert info is not None
    return info


def _requeue_after_lease(session: Session, info: outbox.MessageInfo) -> None:
    later = clock.utcnow() + LEASE + timedelta(seconds=1)
    assert outbox.requeue_stuck(session, message_id=info.id, older_than=later, max_attempts=5)


def test_a_paused_worker_cannot_overwrite_a_newer_attempt(session: Session) -> None:
    info = _queued(session)
    first = _claimed(session, "host:a")
    _requeue_after_lease(session, info)  # worker a was paused past its lease
    second = _claimed(session, "host:b")
    assert (first.attempts, second.attempts) == (1, 2)
    stale = Claim.of(first, "host:a")

    retried = claims.fenced(
        session,
        claim=stale,
        write=outbox.mark_retry,
        message_id=info.id,
        error="timeout",
        retry_at=clock.utcnow(),
        max_attempts=5,
    )
    sent = claims.fenced(
        session,
        claim=stale,
        write=outbox.mark_sent,
        or_queued=True,
        message_id=info.id,
        sid="SMstale",
        segments=1,
    )
    failed = claims.fenced(
        session,
        claim=stale,
        write=outbox.mark_failed,
        message_id=info.id,
        code="21211",
        text="invalid",
    )

    assert (retried, sent, failed) == (None, None, None)
    row = session.get(Message, info.id)
    assert (row.status, row.claimed_by, row.attempts, row.provider_sid) == (
        S.SENDING,
        "host:b",
        2,
        None,
    )
    ignored = session.scalars(
        select(MessageEvent.detail).where(
            MessageEvent.message_id == info.id, MessageEvent.detail.like("ignored: late%")
        )
    )
    assert len(list(ignored)) == 3
    current = Claim.of(second, "host:b")
    assert claims.fenced(
        session,
        claim=current,
        write=outbox.mark_sent,
        or_queued=True,
        message_id=info.id,
        sid="SMnew",
        segments=1,
    )
    assert session.get(Message, info.id).provider_sid == "SMnew"


def test_a_late_send_result_is_kept_when_nobody_claimed_the_message_again(
    session: Session,
) -> None:
    """Requeued after the lease but not claimed again: the SID stops a second send."""
    info = _queued(session)
    first = _claimed(session, "host:a")
    _requeue_after_lease(session, info)
    stale = Claim.of(first, "host:a")
    assert (
        claims.fenced(
            session,
            claim=stale,
            write=outbox.mark_retry,
            message_id=info.id,
            error="x",
            retry_at=clock.utcnow(),
            max_attempts=5,
        )
        is None
    )
    assert claims.fenced(
        session,
        claim=stale,
        write=outbox.mark_sent,
        or_queued=True,
        message_id=info.id,
        sid="SMlate",
        segments=1,
    )
    assert session.get(Message, info.id).status is S.SENT


def test_the_lease_starts_at_the_claim_and_sends_only_in_its_first_half(
    session: Session,
) -> None:
    _queued(session)
    run_start = clock.utcnow() - timedelta(hours=1)
    claimed_at = clock.utcnow()
    [m] = outbox.claim_due(
        session,
        now=run_start + timedelta(hours=2),
        limit=1,
        worker_id="host:a",
        claimed_at=claimed_at,
    )
    assert m.sending_at == claimed_at
    assert claims.may_send(m, now=claimed_at + LEASE / 2 - timedelta(seconds=1), lease=LEASE)
    assert not claims.may_send(m, now=claimed_at + LEASE / 2, lease=LEASE)
