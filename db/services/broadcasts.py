"""Broadcasts: one SMS to every borrower of an audience, previewed, queued, canceled, tracked.

Choices:
- An audience is a set of ACTIVE loans (all, overdue, a bucket, an agent's, a tag's
  borrowers); each borrower gets ONE message, its placeholders filled from the borrower's
  most overdue matching loan (earliest next due date).
- Opted-out and suppressed borrowers get a row too, status SUPPRESSED with the reason, so
  progress and reports count them like any other fate; the worker never sees them.
- Messages wait for the allowed hours in the borrower's zone (send_after) and expire
  sms_expiry_hours later; the worker's policy checks again at send time.
- Rows are read in keyset chunks and bulk-inserted: 100k recipients never become ORM objects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Date, case, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from db import clock, sms_text
from db.config import Settings
from db.models import (
    Borrower,
    BorrowerTag,
    Broadcast,
    BroadcastState,
    Installment,
    Loan,
    LoanState,
    Message,
    MessageEvent,
    MessageKind,
    Role,
    Staff,
    Suppression,
)
from db.models import MessageStatus as S
from db.services.access import Actor, require_role
from db.services.audit import AuditAction, audit
from db.services.deliveries import FailureLine, failure_counts, next_window_open, zone
from db.services.errors import Conflict, InvalidInput, NotFound
from db.services.ledger import Bucket, bucket_dates
from db.services.outbox import (
    MAX_BODY,
    EventSource,
    cancel_broadcast_messages,
    dialect_insert,
)

CHUNK = 500
# Pressing "send" twice must not text everyone twice: the same text to the same audience
# within this time is refused.
REPEAT_GUARD = timedelta(minutes=10)
# A SENT message with no carrier report for this long no longer keeps a broadcast open.
SENT_SETTLES = timedelta(hours=24)
MAX_TAG = 40


class AudienceKind(StrEnum):
    ALL_ACTIVE = "all_active"
    OVERDUE = "overdue"
    BUCKET = "bucket"
    AGENT = "agent"
    TAG = "tag"


@dataclass(frozen=True)
class Audience:
    """Whom a broadcast goes to; only the field its kind needs is kept."""

    kind: AudienceKind
    bucket: Bucket | None = None
    agent_id: int | None = None
    tag: str | None = None

    def __post_init__(self) -> None:
        try:
            k = AudienceKind(self.kind)
            bucket = Bucket(self.bucket) if k is AudienceKind.BUCKET and self.bucket else None
        except ValueError:
            raise InvalidInput("That audience is not one I know.", code="audience") from None
        tag = (self.tag or "").strip().casefold() if k is AudienceKind.TAG else None
        if k is AudienceKind.BUCKET and bucket is None:
            raise InvalidInput("Choose a days-past-due bucket.", code="audience_bucket")
        if k is AudienceKind.AGENT and not self.agent_id:
            raise InvalidInput("Choose an agent.", code="audience_agent")
        if k is AudienceKind.TAG and not 0 < len(tag or "") <= MAX_TAG:
            raise InvalidInput(f"A tag has 1 to {MAX_TAG} characters.", code="audience_tag")
        object.__setattr__(self, "kind", k)
        object.__setattr__(self, "bucket", bucket)
        object.__setattr__(self, "agent_id", self.agent_id if k is AudienceKind.AGENT else None)
        object.__setattr__(self, "tag", tag)

    def to_json(self) -> dict[str, Any]:
        data = {"kind": self.kind.value, "bucket": self.bucket, "agent_id": self.agent_id}
        data["tag"] = self.tag
        return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in data.items() if v}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        try:
            agent = int(data["agent_id"]) if data.get("agent_id") else None
            kind = data["kind"]
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("That audience is not one I know.", code="audience") from None
        return cls(kind, bucket=data.get("bucket"), agent_id=agent, tag=data.get("tag"))

    def describe(self) -> str:
        return {
            AudienceKind.ALL_ACTIVE: "all borrowers with an active loan",
            AudienceKind.OVERDUE: "borrowers with an overdue loan",
            AudienceKind.BUCKET: f"borrowers {self.bucket} days past due",
            AudienceKind.AGENT: f"borrowers of agent #{self.agent_id}",
            AudienceKind.TAG: f"borrowers tagged {self.tag}",
        }[self.kind]


@dataclass(frozen=True)
class Preview:
    recipients: int
    suppressed: int
    suppressed_by_reason: dict[str, int]
    sample: str
    encoding: str
    segments_per_message: int
    total_segments: int  # over the sendable messages, each counted exactly
    sendable: int


@dataclass(frozen=True)
class BroadcastInfo:
    id: int
    created_by_id: int | None
    audience: Audience
    template: str
    state: BroadcastState
    recipients: int
    suppressed: int
    created_at: datetime
    canceled_at: datetime | None
    finished_at: datetime | None
    progress_chat_id: int | None
    progress_message_id: int | None

    @classmethod
    def of(cls, b: Broadcast) -> BroadcastInfo:
        return cls(
            b.id, b.created_by_id, Audience.from_json(b.audience), b.template,
            BroadcastState(b.state), b.recipients, b.suppressed, b.created_at, b.canceled_at,
            b.finished_at, b.progress_chat_id, b.progress_message_id,
        )  # fmt: skip


@dataclass(frozen=True)
class Progress:
    broadcast_id: int
    counts: dict[str, int]  # every MessageStatus value -> count
    total: int
    done: bool


@dataclass(frozen=True)
class Recipient:
    borrower_id: int
    name: str
    phone: str
    timezone: str | None
    loan_id: int
    loan_number: str
    next_due: date | None
    amount_due: Decimal
    outstanding: Decimal
    reason: str | None  # why the borrower is suppressed, None when they may be texted
    error_code: str | None


# --- the audience, in chunks --------------------------------------------------------------


def _conditions(audience: Audience, today: date) -> list[ColumnElement[bool]]:
    """The audience's loans: always ACTIVE ones."""
    conds = [Loan.state == LoanState.ACTIVE]
    if audience.kind is AudienceKind.OVERDUE:
        conds.append(Loan.next_due_date < today)
    elif audience.kind is AudienceKind.BUCKET:
        earliest, latest = bucket_dates(audience.bucket, today)
        conds.append(Loan.next_due_date <= latest)
        if earliest is not None:
            conds.append(Loan.next_due_date >= earliest)
    elif audience.kind is AudienceKind.AGENT:
        conds.append(Loan.agent_id == audience.agent_id)
    elif audience.kind is AudienceKind.TAG:
        tagged = (BorrowerTag.borrower_id == Loan.borrower_id) & (BorrowerTag.tag == audience.tag)
        conds.append(exists().where(tagged))
    return conds


def _row_columns(today: date) -> tuple:
    """A loan's placeholder values, its borrower, and why the borrower may not be texted."""
    cutoff = case((Loan.next_due_date > today, Loan.next_due_date), else_=literal(today, Date))
    owed = (
        Installment.principal_due + Installment.interest_due + Installment.fee_due
        - Installment.amount_paid - Installment.fee_paid
    )  # fmt: skip
    # Cents, so SQLite's floating NUMERIC sums to the exact amount.
    due_cents = (
        select(func.coalesce(func.sum(func.round(owed * 100)), 0))
        .where(Installment.loan_id == Loan.id, Installment.due_date <= cutoff)
        .scalar_subquery()
    )
    return (
        Borrower.id, Borrower.name, Borrower.phone, Borrower.timezone, Borrower.opted_out_at,
        Suppression.reason, Suppression.error_code, Loan.id, Loan.loan_number,
        Loan.next_due_date, due_cents, Loan.amount_payable, Loan.fees_charged, Loan.amount_paid,
    )  # fmt: skip


def _reason(opted_out: datetime | None, reason: str | None, code: str | None) -> str | None:
    if opted_out is not None:
        return "opted out"
    if reason is None:
        return None
    return f"suppressed number (carrier {code})" if code else f"suppressed number ({reason})"


def _recipient(row: Any) -> Recipient:
    (bid, name, phone, tz, opted, s_reason, s_code, lid, number, due, cents, payable, fees,
     paid) = row  # fmt: skip
    return Recipient(
        bid, name, phone, tz, lid, number, due, Decimal(int(cents or 0)).scaleb(-2),
        payable + fees - paid, _reason(opted, s_reason, s_code), s_code,
    )  # fmt: skip


def audience_recipients(
    session: Session, *, audience: Audience, today: date
) -> Iterator[list[Recipient]]:
    """The audience's borrowers, one each (their most overdue loan), in chunks, by id."""
    nulls_last = case((Loan.next_due_date.is_(None), 1), else_=0)
    stmt = (
        select(*_row_columns(today))
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .outerjoin(Suppression, Suppression.phone == Borrower.phone)
        .where(*_conditions(audience, today))
        .order_by(Loan.borrower_id, nulls_last, Loan.next_due_date, Loan.id)
    )
    # One sorted pass, streamed (a server-side cursor on PostgreSQL): the caller may
    # insert between chunks on the same connection.
    last = None
    with session.execute(stmt.execution_options(yield_per=CHUNK)) as result:
        for rows in result.partitions():
            chunk = []
            for row in rows:
                if row[0] != last:  # a borrower's first row is their most overdue loan
                    chunk.append(_recipient(row))
                    last = row[0]
            if chunk:
                yield chunk


def _render(template: str, r: Recipient, settings: Settings) -> str:
    def money(amount: Decimal) -> str:
        return sms_text.sms_amount(amount, settings.currency, settings.minor_units)

    body = sms_text.render(template, {
        "name": r.name, "amount_due": money(r.amount_due), "outstanding": money(r.outstanding),
        "due_date": sms_text.sms_date(r.next_due) if r.next_due else "",
        "loan_number": r.loan_number, "agency": settings.agency_name,
    })  # fmt: skip
    if len(body) > MAX_BODY:
        raise InvalidInput(
            f"Filled in for {r.name}, the message has {len(body)} characters; "
            f"the limit is {MAX_BODY}. Shorten it.",
            code="broadcast_too_long",
        )
    return body


def _rendered(
    session: Session, audience: Audience, template: str, today: date, settings: Settings
) -> Iterator[list[tuple[Recipient, str]]]:
    for chunk in audience_recipients(session, audience=audience, today=today):
        yield [(r, _render(template, r, settings)) for r in chunk]


# --- checks -------------------------------------------------------------------------------


def clean_template(template: str) -> str:
    """The template stripped; 1 to MAX_BODY characters and only known placeholders."""
    text = (template or "").strip()
    if not 0 < len(text) <= MAX_BODY:
        raise InvalidInput(
            f"A broadcast has 1 to {MAX_BODY} characters; this one has {len(text)}.",
            code="broadcast_length",
        )
    sms_text.check_template(text)
    return text


def _check(session: Session, actor: Actor, audience: Audience, template: str, what: str) -> str:
    require_role(actor, Role.ADMIN, what)
    text = clean_template(template)
    if audience.kind is AudienceKind.AGENT and session.get(Staff, audience.agent_id) is None:
        raise NotFound("No such agent.", code="agent_not_found")
    return text


def _empty(session: Session, audience: Audience, today: date) -> bool:
    found = select(Loan.id).where(*_conditions(audience, today)).limit(1)
    return session.scalars(found).first() is None


def _nobody() -> InvalidInput:
    return InvalidInput("Nobody matches that audience.", code="audience_empty")


# --- preview and create -------------------------------------------------------------------


def preview_broadcast(
    session: Session, *, actor: Actor, audience: Audience, template: str, today: date,
    settings: Settings,
) -> Preview:  # fmt: skip
    """Counts, reasons, SMS parts, and the first sendable message exactly as it will go."""
    text = _check(session, actor, audience, template, "broadcast")
    total, reasons, segs, sendable = 0, Counter(), 0, 0
    first = first_sendable = None
    for chunk in _rendered(session, audience, text, today, settings):
        for r, body in chunk:
            total, first = total + 1, first or body
            if r.reason:
                reasons[r.reason] += 1
                continue
            sendable, segs = sendable + 1, segs + sms_text.segments(body)
            first_sendable = first_sendable or body
    if not total:
        raise _nobody()
    sample = first_sendable or first
    return Preview(
        recipients=total, suppressed=total - sendable, suppressed_by_reason=dict(reasons),
        sample=sample, encoding=sms_text.encoding(sample).value,
        segments_per_message=sms_text.segments(sample), total_segments=segs, sendable=sendable,
    )  # fmt: skip


def _row(b: Broadcast, r: Recipient, body: str, now: datetime, settings: Settings) -> dict:
    """One message row: queued for the borrower's allowed hours, or suppressed with why."""
    row = {
        "to_phone": r.phone, "body": body, "kind": MessageKind.BROADCAST,
        "borrower_id": r.borrower_id, "loan_id": r.loan_id, "broadcast_id": b.id,
        "idempotency_key": f"bc:{b.id}:{r.borrower_id}", "attempts": 0,
        "requested_by_id": b.created_by_id, "created_at": now, "updated_at": now,
        "status": S.QUEUED, "error_code": None, "error_message": None,
        "send_after": now, "expires_at": None,
    }  # fmt: skip
    if r.reason:
        row.update(status=S.SUPPRESSED, error_code=r.error_code, error_message=r.reason)
        return row
    tz = zone(r.timezone, settings.agency_timezone)
    opens = next_window_open(now, tz, settings.allowed_window)
    row["send_after"] = opens or now
    row["expires_at"] = row["send_after"] + timedelta(hours=settings.sms_expiry_hours)
    return row


def _insert(session: Session, rows: list[dict]) -> None:
    """Insert rows as one executemany; a row whose key exists is skipped."""
    stmt = dialect_insert(session, Message.__table__)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["idempotency_key"]), rows)


def _record_events(session: Session, broadcast_id: int, now: datetime) -> Counter:
    """A message_event for each of the broadcast's messages without one; counts by status."""
    fresh = [Message.broadcast_id == broadcast_id,
             ~exists().where(MessageEvent.message_id == Message.id)]  # fmt: skip
    counts = session.execute(
        select(Message.status, func.count()).where(*fresh).group_by(Message.status)
    ).all()
    detail = case((Message.status == S.SUPPRESSED, Message.error_message), else_="broadcast")
    at = literal(now, MessageEvent.__table__.c.created_at.type)
    rows = select(Message.id, Message.status, literal(EventSource.OUTBOX.value), detail, at)
    # One INSERT ... SELECT: 100k ids never travel to Python and back.
    session.execute(
        insert(MessageEvent).from_select(
            ["message_id", "status", "source", "detail", "created_at"], rows.where(*fresh)
        )
    )
    return Counter({S(status): int(n) for status, n in counts})


def fill_broadcast(
    session: Session, *, broadcast: Broadcast, today: date, settings: Settings
) -> Counter:
    """Queue the broadcast's messages; a key already present is skipped, so re-running is safe."""
    audience, now = Audience.from_json(broadcast.audience), clock.utcnow()
    for chunk in _rendered(session, audience, broadcast.template, today, settings):
        _insert(session, [_row(broadcast, r, body, now, settings) for r, body in chunk])
    return _record_events(session, broadcast.id, now)


def _repeat_guard(session: Session, actor: Actor, audience: Audience, text: str) -> None:
    since = clock.utcnow() - REPEAT_GUARD
    recent = session.scalars(
        select(Broadcast).where(
            Broadcast.created_by_id == actor.staff_id, Broadcast.created_at >= since,
            Broadcast.state != BroadcastState.CANCELED, Broadcast.template == text,
        )
    )  # fmt: skip
    if any(Audience.from_json(b.audience) == audience for b in recent):
        raise Conflict(
            "You sent this same message to this audience minutes ago; it is not sent twice.",
            code="broadcast_repeat",
        )


def create_broadcast(
    session: Session, *, actor: Actor, audience: Audience, template: str, today: date,
    settings: Settings,
) -> BroadcastInfo:  # fmt: skip
    """Queue one message per borrower of the audience (suppressed ones as SUPPRESSED rows)."""
    text = _check(session, actor, audience, template, "broadcast")
    if _empty(session, audience, today):
        raise _nobody()
    _repeat_guard(session, actor, audience, text)
    b = Broadcast(created_by_id=actor.staff_id, audience=audience.to_json(), template=text,
                  state=BroadcastState.QUEUED, recipients=0, suppressed=0)  # fmt: skip
    session.add(b)
    session.flush()
    tally = fill_broadcast(session, broadcast=b, today=today, settings=settings)
    if not tally[S.QUEUED]:
        # The caller rolls back on a ServiceError, taking the rows above with it.
        raise InvalidInput("Everyone in that audience has opted out or cannot take SMS.",
                           code="audience_unreachable")  # fmt: skip
    b.recipients, b.suppressed = tally.total(), tally[S.SUPPRESSED]
    audit(session, actor=actor, action=AuditAction.BROADCAST_CREATED, target_type="broadcast",
          target_id=b.id, details={"audience": audience.describe(), "recipients": b.recipients,
                                   "suppressed": b.suppressed})  # fmt: skip
    session.flush()
    return BroadcastInfo.of(b)


# --- after: cancel, progress, failures, list ---------------------------------------------


def _get(session: Session, broadcast_id: int, *, lock: bool = False) -> Broadcast:
    stmt = select(Broadcast).where(Broadcast.id == broadcast_id)
    b = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if b is None:
        raise NotFound(f"No broadcast #{broadcast_id}.", code="broadcast_not_found")
    return b


def cancel_broadcast(session: Session, *, actor: Actor, broadcast_id: int) -> BroadcastInfo:
    """Stop the still-queued messages; those already sending or sent go on."""
    require_role(actor, Role.ADMIN, "cancel a broadcast")
    b = _get(session, broadcast_id, lock=True)
    if b.state != BroadcastState.QUEUED:
        raise Conflict(f"Broadcast #{b.id} is already {b.state}.", code="broadcast_state")
    canceled = cancel_broadcast_messages(session, broadcast_id=b.id)
    if not canceled:
        raise Conflict(f"Broadcast #{b.id} has nothing left to cancel: every message has gone.",
                       code="broadcast_state")  # fmt: skip
    b.state, b.canceled_at = BroadcastState.CANCELED, clock.utcnow()
    audit(session, actor=actor, action=AuditAction.BROADCAST_CANCELED, target_type="broadcast",
          target_id=b.id, details={"canceled": canceled})  # fmt: skip
    session.flush()
    return BroadcastInfo.of(b)


def broadcast_progress(
    session: Session, *, broadcast_id: int, now: datetime | None = None
) -> Progress:
    """Messages by status; done when none wait to go and every sent one is settled or old."""
    _get(session, broadcast_id)
    rows = session.execute(
        select(Message.status, func.count(), func.max(Message.sent_at))
        .where(Message.broadcast_id == broadcast_id)
        .group_by(Message.status)
    ).all()
    counts = {s.value: 0 for s in S} | {S(s).value: int(n) for s, n, _ in rows}
    last_sent = max((at for s, _, at in rows if s == S.SENT and at), default=None)
    settled = last_sent is None or last_sent < (now or clock.utcnow()) - SENT_SETTLES
    done = not counts[S.QUEUED] and not counts[S.SENDING] and settled
    return Progress(broadcast_id, counts, sum(counts.values()), done)


def failures_by_code(session: Session, *, broadcast_id: int) -> list[tuple[str, int, str]]:
    """(code, count, plain words) of the broadcast's failed and undelivered messages."""
    lines: list[FailureLine] = failure_counts(session, Message.broadcast_id == broadcast_id)
    return [(f.code, f.count, f.words) for f in lines]


def list_broadcasts(session: Session, *, actor: Actor, limit: int = 10) -> list[BroadcastInfo]:
    """The latest broadcasts, newest first."""
    require_role(actor, Role.ADMIN, "list broadcasts")
    stmt = select(Broadcast).order_by(Broadcast.created_at.desc(), Broadcast.id.desc())
    return [BroadcastInfo.of(b) for b in session.scalars(stmt.limit(max(1, min(limit, 50))))]


def finish_done_broadcasts(session: Session) -> int:
    """Mark DONE the queued broadcasts with nothing queued or sending; returns how many."""
    waiting = exists().where(
        Message.broadcast_id == Broadcast.id, Message.status.in_((S.QUEUED, S.SENDING))
    )
    result = session.execute(
        update(Broadcast)
        .where(Broadcast.state == BroadcastState.QUEUED, ~waiting)
        .values(state=BroadcastState.DONE, finished_at=clock.utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0
