"""Composing a broadcast: one SMS to every borrower of an audience, previewed, then queued.

What follows once it is queued (progress, cancel, list, finish) is in
db/services/broadcasts/tracking.py, re-exported here.

Choices:
- Whom it goes to is an Audience (db.services.broadcasts.audiences, re-exported here): one
  message per borrower, its placeholders filled from the borrower's most overdue matching loan.
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
from typing import Any

from sqlalchemy import case, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from db import clock, sms_text
from db.agency import agency_of
from db.config import Settings
from db.models import (
    Broadcast,
    BroadcastState,
    Loan,
    Message,
    MessageEvent,
    MessageKind,
    Role,
    Staff,
)
from db.models import MessageStatus as S
from db.money import format_money
from db.services.access import Actor, require_role
from db.services.audit.write import AuditAction, audit
from db.services.broadcasts import audiences
from db.services.broadcasts.audiences import (
    CHUNK,
    Audience,
    AudienceKind,
    Recipient,
    audience_is_empty,
)
from db.services.broadcasts.audiences import MAX_TAG as MAX_TAG
from db.services.broadcasts.tracking import SENT_SETTLES as SENT_SETTLES
from db.services.broadcasts.tracking import BroadcastInfo
from db.services.broadcasts.tracking import Progress as Progress
from db.services.broadcasts.tracking import broadcast_progress as broadcast_progress
from db.services.broadcasts.tracking import cancel_broadcast as cancel_broadcast
from db.services.broadcasts.tracking import failures_by_code as failures_by_code
from db.services.broadcasts.tracking import finish_done_broadcasts as finish_done_broadcasts
from db.services.broadcasts.tracking import list_broadcasts as list_broadcasts
from db.services.errors import Conflict, InvalidInput, NotFound
from db.services.sms.outbox import MAX_BODY, EventSource, dialect_insert
from db.sms_window import next_window_open, zone

# Pressing "send" twice must not text everyone twice: the same text to the same audience
# within this time is refused.
REPEAT_GUARD = timedelta(minutes=10)


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


# --- the audience, rendered ---------------------------------------------------------------


def audience_recipients(
    session: Session, *, audience: Audience, today: date
) -> Iterator[list[Recipient]]:
    """audiences.audience_recipients, read CHUNK rows at a time (a knob the tests turn)."""
    return audiences.audience_recipients(session, audience=audience, today=today, chunk_size=CHUNK)


def _render(template: str, r: Recipient, settings: Settings) -> str:
    agency = agency_of(settings)

    def money(amount: Decimal) -> str:
        return format_money(amount, agency, plain=True)

    body = sms_text.render(
        template,
        {
            "name": r.name,
            "amount_due": money(r.amount_due),
            "outstanding": money(r.outstanding),
            "due_date": sms_text.sms_date(r.next_due) if r.next_due else "",
            "loan_number": r.loan_number,
            "agency": agency.name,
        },
    )
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


def _nobody() -> InvalidInput:
    return InvalidInput("Nobody matches that audience.", code="audience_empty")


# --- preview and create -------------------------------------------------------------------


def preview_broadcast(
    session: Session,
    *,
    actor: Actor,
    audience: Audience,
    template: str,
    today: date,
    settings: Settings,
) -> Preview:
    """Counts, reasons, SMS parts, and the first sendable message exactly as it will go."""
    text = _check(session, actor, audience, template, "broadcast")
    total, reasons, segs, sendable = 0, Counter[str](), 0, 0
    first: str | None = None
    first_sendable: str | None = None
    for chunk in _rendered(session, audience, text, today, settings):
        for r, body in chunk:
            total, first = total + 1, first or body
            if r.reason:
                reasons[r.reason] += 1
                continue
            sendable, segs = sendable + 1, segs + sms_text.segments(body)
            first_sendable = first_sendable or body
    if first is None:  # nobody at all
        raise _nobody()
    sample = first_sendable or first
    return Preview(
        recipients=total,
        suppressed=total - sendable,
        suppressed_by_reason=dict(reasons),
        sample=sample,
        encoding=sms_text.encoding(sample).value,
        segments_per_message=sms_text.segments(sample),
        total_segments=segs,
        sendable=sendable,
    )


def _row(
    b: Broadcast, r: Recipient, body: str, now: datetime, settings: Settings
) -> dict[str, Any]:
    """One message row: queued for the borrower's allowed hours, or suppressed with why."""
    row: dict[str, Any] = {
        "to_phone": r.phone,
        "body": body,
        "kind": MessageKind.BROADCAST,
        "borrower_id": r.borrower_id,
        "loan_id": r.loan_id,
        "broadcast_id": b.id,
        "idempotency_key": f"bc:{b.id}:{r.borrower_id}",
        "attempts": 0,
        "requested_by_id": b.created_by_id,
        "created_at": now,
        "updated_at": now,
        "status": S.QUEUED,
        "error_code": None,
        "error_message": None,
        "send_after": now,
        "expires_at": None,
    }
    if r.reason:
        row.update(status=S.SUPPRESSED, error_code=r.error_code, error_message=r.reason)
        return row
    tz = zone(r.timezone, settings.agency_timezone)
    opens = next_window_open(now, tz, settings.allowed_window)
    row["send_after"] = opens or now
    row["expires_at"] = row["send_after"] + timedelta(hours=settings.sms_expiry_hours)
    return row


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert rows as one executemany; a row whose key exists is skipped."""
    stmt = dialect_insert(session, Message.__table__)
    session.execute(stmt.on_conflict_do_nothing(index_elements=["idempotency_key"]), rows)


def _record_events(session: Session, broadcast_id: int, now: datetime) -> Counter[S]:
    """A message_event for each of the broadcast's messages without one; counts by status."""
    fresh = [
        Message.broadcast_id == broadcast_id,
        ~exists().where(MessageEvent.message_id == Message.id),
    ]
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
) -> Counter[S]:
    """Queue the broadcast's messages; a key already present is skipped, so re-running is safe."""
    audience, now = Audience.from_json(broadcast.audience), clock.utcnow()
    for chunk in _rendered(session, audience, broadcast.template, today, settings):
        _insert(session, [_row(broadcast, r, body, now, settings) for r, body in chunk])
    _stamp_loan_versions(session, broadcast.id)
    return _record_events(session, broadcast.id, now)


def _stamp_loan_versions(session: Session, broadcast_id: int) -> None:
    """Each message's loan version, read as its text was rendered (db.services.sms.truth)."""
    version = select(Loan.version).where(Loan.id == Message.loan_id).scalar_subquery()
    session.execute(
        update(Message)
        .where(
            Message.broadcast_id == broadcast_id,
            Message.loan_id.is_not(None),
            Message.loan_version.is_(None),
        )
        .values(loan_version=version)
        .execution_options(synchronize_session=False)
    )


def _repeat_guard(session: Session, actor: Actor, audience: Audience, text: str) -> None:
    since = clock.utcnow() - REPEAT_GUARD
    recent = session.scalars(
        select(Broadcast).where(
            Broadcast.created_by_id == actor.staff_id,
            Broadcast.created_at >= since,
            Broadcast.state != BroadcastState.CANCELED,
            Broadcast.template == text,
        )
    )
    if any(Audience.from_json(b.audience) == audience for b in recent):
        raise Conflict(
            "You sent this same message to this audience minutes ago; it is not sent twice.",
            code="broadcast_repeat",
        )


def create_broadcast(
    session: Session,
    *,
    actor: Actor,
    audience: Audience,
    template: str,
    today: date,
    settings: Settings,
) -> BroadcastInfo:
    """Queue one message per borrower of the audience (suppressed ones as SUPPRESSED rows)."""
    text = _check(session, actor, audience, template, "broadcast")
    if audience_is_empty(session, audience=audience, today=today):
        raise _nobody()
    _repeat_guard(session, actor, audience, text)
    b = Broadcast(
        created_by_id=actor.staff_id,
        audience=audience.to_json(),
        template=text,
        state=BroadcastState.QUEUED,
        recipients=0,
        suppressed=0,
    )
    session.add(b)
    session.flush()
    tally = fill_broadcast(session, broadcast=b, today=today, settings=settings)
    if not tally[S.QUEUED]:
        # The caller rolls back on a ServiceError, taking the rows above with it.
        raise InvalidInput(
            "Everyone in that audience has opted out or cannot take SMS.",
            code="audience_unreachable",
        )
    b.recipients, b.suppressed = tally.total(), tally[S.SUPPRESSED]
    audit(
        session,
        actor=actor,
        action=AuditAction.BROADCAST_CREATED,
        target_type="broadcast",
        target_id=b.id,
        details={
            "audience": audience.describe(),
            "recipients": b.recipients,
            "suppressed": b.suppressed,
        },
    )
    session.flush()
    return BroadcastInfo.of(b)
