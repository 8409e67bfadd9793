"""The outbox: queueing SMS and every transition of a message, each with its message_event.

Status only moves forward (queued < sending < sent < final), except two sanctioned steps
back to queued: a retry after a transient error and a deferral by the sending policy.
Functions take a Session and never commit; the dispatcher commits around the sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db import clock
from db.failures import Failure, FailureClass, StreakRule
from db.models import (
    Base,
    Borrower,
    Broadcast,
    BroadcastState,
    Loan,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
)
from db.services.errors import InvalidInput
from db.services.sms import suppressions

S = MessageStatus
# Nothing happens to a message in these any more (progress counts, reports).
FINAL = frozenset({S.DELIVERED, S.UNDELIVERED, S.FAILED, S.CANCELED, S.SUPPRESSED})
_RANK = {S.QUEUED: 0, S.SENDING: 1, S.SENT: 2, S.DELIVERED: 3, S.UNDELIVERED: 3, S.FAILED: 3}
# The provider refuses longer bodies (the worker's provider module names its code).
MAX_BODY = 1600


class EventSource(StrEnum):
    """Who moved a message (message_event.source)."""

    OUTBOX = "outbox"
    WORKER = "worker"
    POLICY = "policy"
    CALLBACK = "callback"
    POLL = "poll"
    RECONCILE = "reconcile"
    PLANNER = "planner"


@dataclass(frozen=True)
class MessageInfo:
    id: int
    to: str
    body: str
    kind: MessageKind
    status: MessageStatus
    idempotency_key: str
    borrower_id: int | None
    loan_id: int | None
    broadcast_id: int | None
    rule: str | None
    attempts: int
    send_after: datetime
    expires_at: datetime | None
    provider_sid: str | None
    error_code: str | None
    error_message: str | None
    segments: int | None
    created_at: datetime
    sending_at: datetime | None
    sent_at: datetime | None

    @classmethod
    def of(cls, m: Message) -> MessageInfo:
        names = [f.name for f in fields(cls) if f.name != "to"]
        return cls(to=m.to_phone, **{name: getattr(m, name) for name in names})


# What a dispatcher holds after claiming: the same fields, status SENDING.
ClaimedMessage = MessageInfo


def dialect_insert(
    session: Session, table: type[Base] | Table
) -> postgresql.Insert | sqlite.Insert:
    """INSERT for the session's dialect, so on_conflict_do_nothing is available."""
    name = session.get_bind().dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def event(
    session: Session,
    message_id: int,
    status: str,
    source: str,
    detail: str | None = None,
    error_code: str | None = None,
) -> None:
    """Record one transition (or one ignored report) of a message."""
    detail = detail[:500] if detail else None
    row = MessageEvent(message_id=message_id, status=str(status), source=source, detail=detail)
    row.error_code = error_code
    session.add(row)


def record_events(
    session: Session, ids: Sequence[int], status: str, source: str, detail: str | None = None
) -> None:
    """The same event for many messages, in one INSERT."""
    if ids:
        now = clock.utcnow()
        rows = [{"message_id": i, "status": str(status), "source": source} for i in ids]
        session.execute(MessageEvent.__table__.insert().values(detail=detail, created_at=now), rows)


def queue_message(
    session: Session,
    *,
    to: str,
    body: str,
    kind: MessageKind,
    idempotency_key: str,
    borrower_id: int | None = None,
    loan_id: int | None = None,
    broadcast_id: int | None = None,
    rule: str | None = None,
    send_after: datetime | None = None,
    expires_at: datetime | None = None,
    requested_by: int | None = None,
) -> MessageInfo | None:
    """Queue one SMS; None when a message with this idempotency key already exists."""
    if not body or not body.strip() or len(body) > MAX_BODY:
        raise InvalidInput(f"An SMS must have 1 to {MAX_BODY} characters.", code="sms_length")
    now = clock.utcnow()
    values = dict(
        to_phone=to,
        body=body,
        kind=kind,
        idempotency_key=idempotency_key,
        borrower_id=borrower_id,
        loan_id=loan_id,
        broadcast_id=broadcast_id,
        rule=rule,
        status=S.QUEUED,
        attempts=0,
        send_after=send_after or now,
        expires_at=expires_at,
        requested_by_id=requested_by,
        created_at=now,
        updated_at=now,
    )
    if loan_id is not None:  # the version this text is true for (db.services.sms.truth)
        values["loan_version"] = session.scalar(select(Loan.version).where(Loan.id == loan_id))
    stmt = dialect_insert(session, Message).values(**values)
    stmt = stmt.on_conflict_do_nothing(index_elements=["idempotency_key"])
    new_id = session.execute(stmt.returning(Message.id)).scalar_one_or_none()
    if new_id is None:
        return None
    event(session, new_id, S.QUEUED, EventSource.OUTBOX, str(kind))
    return MessageInfo.of(session.get_one(Message, new_id))


def _locked(session: Session, message_id: int) -> Message | None:
    stmt = select(Message).where(Message.id == message_id).with_for_update()
    return session.execute(stmt.execution_options(populate_existing=True)).scalar_one_or_none()


def claim_due(
    session: Session,
    *,
    now: datetime,
    limit: int,
    worker_id: str,
    claimed_at: datetime | None = None,
) -> list[ClaimedMessage]:
    """Take up to limit due queued messages, oldest first, as SENDING (the caller commits).

    sending_at is the claim time (claimed_at, else now): the start of the worker's lease.
    """
    stmt = (
        select(Message)
        .where(Message.status == S.QUEUED, Message.send_after <= now)
        .order_by(Message.send_after, Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.execute(stmt.execution_options(populate_existing=True)).scalars().all()
    for m in rows:
        m.status, m.sending_at, m.claimed_by = S.SENDING, claimed_at or now, worker_id[:64]
        m.attempts, m.updated_at = (m.attempts or 0) + 1, now
        event(session, m.id, S.SENDING, EventSource.WORKER, f"attempt {m.attempts}")
    session.flush()
    return [MessageInfo.of(m) for m in rows]


def mark_sent(
    session: Session,
    *,
    message_id: int,
    sid: str,
    segments: int | None,
    source: str = EventSource.WORKER,
) -> bool:
    """The provider accepted the message: SENT with its SID. False when it had moved on."""
    m = _locked(session, message_id)
    if m is None or m.status not in (S.SENDING, S.QUEUED):
        # Sent twice is worse than recorded late: keep the first SID, note the second.
        if m is not None:
            event(session, m.id, m.status, source, f"ignored send report, sid {sid}")
        return False
    now = clock.utcnow()
    m.status, m.provider_sid, m.segments, m.sent_at, m.updated_at = S.SENT, sid, segments, now, now
    m.error_code = m.error_message = m.failure_reason = None
    event(session, m.id, S.SENT, source, f"sid {sid}")
    return True


def mark_retry(
    session: Session,
    *,
    message_id: int,
    error: str,
    retry_at: datetime,
    max_attempts: int,
    error_code: str | None = None,
    reason: str | None = None,
    source: str = EventSource.WORKER,
) -> MessageStatus | None:
    """After a transient error: QUEUED again at retry_at, or FAILED once attempts reach max.

    reason: the error in plain words (from the worker), kept as failure_reason on giving up."""
    m = _locked(session, message_id)
    if m is None or m.status != S.SENDING:
        return None
    if _broadcast_canceled(session, m, source):
        return S.CANCELED
    m.error_code, m.error_message, m.claimed_by = error_code, error[:500], None
    m.updated_at = clock.utcnow()
    if m.attempts >= max_attempts:
        m.status, m.failed_at = S.FAILED, m.updated_at
        m.failure_reason = reason[:200] if reason else None
        detail = f"gave up after {m.attempts} attempts: {error}"
    else:
        m.status, m.send_after = S.QUEUED, retry_at
        detail = f"retry at {retry_at:%Y-%m-%d %H:%M:%S}Z: {error}"
    event(session, m.id, m.status, source, detail, error_code)
    return MessageStatus(m.status)


def defer(
    session: Session,
    *,
    message_id: int,
    until: datetime,
    reason: str,
    source: str = EventSource.POLICY,
) -> bool:
    """Back to QUEUED until a later time without counting an attempt (the policy said wait)."""
    m = _locked(session, message_id)
    if m is None or m.status != S.SENDING:
        return False
    if _broadcast_canceled(session, m, source):
        return False
    m.status, m.send_after, m.claimed_by = S.QUEUED, until, None
    m.attempts, m.updated_at = max((m.attempts or 1) - 1, 0), clock.utcnow()
    event(session, m.id, S.QUEUED, source, f"wait until {until:%Y-%m-%d %H:%M}Z: {reason}")
    return True


def _broadcast_canceled(session: Session, m: Message, source: str) -> bool:
    """A message of a canceled broadcast, coming back from flight: CANCELED, never QUEUED.

    The broadcast row is read under a share lock, so a cancel running now either committed
    first (seen here) or waits for this transaction and then cancels the requeued message.
    """
    if m.broadcast_id is None:
        return False
    stmt = select(Broadcast.state).where(Broadcast.id == m.broadcast_id)
    if session.scalar(stmt.with_for_update(read=True)) != BroadcastState.CANCELED:
        return False
    m.status, m.claimed_by, m.updated_at = S.CANCELED, None, clock.utcnow()
    event(session, m.id, S.CANCELED, source, "broadcast canceled while in flight")
    return True


def mark_failed(
    session: Session,
    *,
    message_id: int,
    code: str | None,
    text: str,
    source: str = EventSource.WORKER,
    reason: str | None = None,
    failure: Failure | None = None,
    rule: StreakRule | None = None,
) -> bool:
    """A permanent error: FAILED with the provider's code and reason (the worker's plain
    words); failure (sorted by the worker) says what it means for the number
    (suppressions.record_failure)."""
    m = _locked(session, message_id)
    if m is None or m.status not in (S.SENDING, S.QUEUED):
        return False
    now = clock.utcnow()
    m.status, m.error_code, m.error_message = S.FAILED, code, text[:500]
    m.failure_reason = reason[:200] if reason else None
    m.failed_at, m.updated_at, m.claimed_by = now, now, None
    event(session, m.id, S.FAILED, source, text, code)
    _consequences(session, m, failure, rule)
    return True


def mark_suppressed(
    session: Session, *, message_id: int, reason: str, source: str = EventSource.POLICY
) -> bool:
    """A rule stopped the message before sending: SUPPRESSED with the reason."""
    m = _locked(session, message_id)
    if m is None or m.status not in (S.SENDING, S.QUEUED):
        return False
    m.status, m.error_message, m.claimed_by = S.SUPPRESSED, reason[:500], None
    m.updated_at = clock.utcnow()
    event(session, m.id, S.SUPPRESSED, source, reason)
    return True


def _consequences(
    session: Session, m: Message, failure: Failure | None, rule: StreakRule | None
) -> None:
    """What a failure means beyond this message: opt-out, suppression, a streak counted."""
    if failure is None:
        return
    if failure.kind is FailureClass.OPT_OUT:
        opt_out(session, borrower_id=m.borrower_id, phone=m.to_phone)
    has_borrower = m.borrower_id is not None or suppressions.borrower_has(session, m.to_phone)
    suppressions.record_failure(
        session,
        phone=m.to_phone,
        failure=failure,
        rule=rule or StreakRule(),
        has_borrower=has_borrower,
    )


def opt_out(session: Session, *, borrower_id: int | None, phone: str) -> None:
    """Mark the borrower (by id, else by phone) as opted out, keeping the first date."""
    cond = Borrower.id == borrower_id if borrower_id else Borrower.phone == phone
    session.execute(
        update(Borrower)
        .where(cond, Borrower.opted_out_at.is_(None))
        .values(opted_out_at=clock.utcnow())
        .execution_options(synchronize_session=False)
    )


def apply_status(
    session: Session,
    *,
    sid: str,
    status: MessageStatus | None,
    error_code: str | None,
    source: str,
    reported: str | None = None,
    reason: str | None = None,
    failure: Failure | None = None,
    rule: StreakRule | None = None,
) -> bool:
    """Apply a provider status report; every report is recorded, only forward moves apply.

    status: what the report means in our words, translated by the worker at its boundary
    (None: a word we do not know, recorded and ignored); reported: the provider's own word,
    kept in the event as it came (default: status). reason: a failure in plain words, kept
    as failure_reason. failure: what error_code means, also sorted by the worker; without
    it a failed report changes only the message."""
    m = session.execute(
        select(Message).where(Message.provider_sid == sid).with_for_update()
    ).scalar_one_or_none()
    if m is None:
        return False
    new = None if status is None else MessageStatus(status)
    word = reported or (new.value if new else None)
    now = clock.utcnow()
    m.updated_at = now  # a report, even an old one, re-arms the "ask later" timer
    if new is None or _RANK.get(new, 0) <= _RANK.get(MessageStatus(m.status), 3):
        event(session, m.id, word or "?", source, f"ignored: message is {m.status}", error_code)
        return False
    m.status = new
    if new is S.DELIVERED:
        m.delivered_at = now
        suppressions.delivered(session, phone=m.to_phone)
    elif new in (S.UNDELIVERED, S.FAILED):
        m.failed_at, m.error_code = now, error_code
        m.failure_reason = reason[:200] if reason else None
    event(session, m.id, new, source, f"provider: {word}", error_code)
    if new in (S.UNDELIVERED, S.FAILED):
        _consequences(session, m, failure, rule)
    return True


def cancel_broadcast_messages(session: Session, *, broadcast_id: int) -> int:
    """Cancel a broadcast's still-queued messages; those already sending go on. Returns count."""
    now = clock.utcnow()
    ids = (
        session.execute(
            update(Message)
            .where(Message.broadcast_id == broadcast_id, Message.status == S.QUEUED)
            .values(status=S.CANCELED, updated_at=now)
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    record_events(session, ids, S.CANCELED, EventSource.OUTBOX, "broadcast canceled")
    return len(ids)


def stuck_sending(session: Session, *, older_than: datetime, limit: int = 500) -> list[MessageInfo]:
    """SENDING since before older_than: its worker probably died between send and answer."""
    stmt = (
        select(Message)
        .where(Message.status == S.SENDING, Message.sending_at < older_than)
        .order_by(Message.sending_at)
        .limit(limit)
    )
    return [MessageInfo.of(m) for m in session.execute(stmt).scalars()]


def sent_without_final(
    session: Session,
    *,
    older_than: datetime,
    sent_since: datetime | None = None,
    limit: int = 500,
) -> list[MessageInfo]:
    """SENT with no report since older_than (and sent after sent_since): to ask the provider."""
    stmt = select(Message).where(Message.status == S.SENT, Message.updated_at < older_than)
    if sent_since is not None:
        stmt = stmt.where(Message.sent_at >= sent_since)
    stmt = stmt.order_by(Message.updated_at).limit(limit)
    return [MessageInfo.of(m) for m in session.execute(stmt).scalars()]


def requeue_stuck(
    session: Session, *, message_id: int, older_than: datetime, max_attempts: int
) -> MessageStatus | None:
    """A stuck SENDING message the provider never saw: QUEUED now (or FAILED at max)."""
    m = _locked(session, message_id)
    if m is None or m.status != S.SENDING or m.sending_at is None or m.sending_at >= older_than:
        return None
    return mark_retry(
        session,
        message_id=message_id,
        error="worker stopped before the send finished",
        retry_at=clock.utcnow(),
        max_attempts=max_attempts,
        source=EventSource.RECONCILE,
    )


def get_message(session: Session, *, message_id: int) -> MessageInfo | None:
    """One message as a frozen view, or None."""
    m = session.get(Message, message_id)
    return MessageInfo.of(m) if m else None
