"""Twilio's vocabulary, sorted into ours: which error codes mean what for the number.

Sources: Twilio's error pages (twilio.com/docs/api/errors/<code>).
- Permanent (the number is wrong, not a mobile, or blocked; suppress it now): 21211
  invalid 'To', 21614 not a mobile number, 30004 blocked by the recipient or carrier,
  30005 unknown destination (not in service), 30006 landline or unreachable carrier.
- Temporary (try later, count: a streak suppresses, see services/suppressions): 30003
  unreachable handset (off, no signal, roaming), 30008 unknown error at the carrier.
- Opt-out: 21610 the recipient replied STOP to our sender.
- Anything else says nothing about the number: our account or sender (21408 region not
  enabled, 21612 route, 30002 suspended, 30034 unregistered 10DLC sender), this message
  (21617 too long, 30007 filtered as spam, 30010 price) or Twilio's queue (30001). Those
  fail the message and suppress nothing: suppressing a borrower for our own
  misconfiguration would silence them for good.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from db.config import Settings, get_settings
from db.failures import Failure, FailureClass, StreakRule
from db.models import MessageStatus
from db.services.sms import outbox
from scheduler.twilio_words import words

PERMANENT = frozenset({"21211", "21614", "30004", "30005", "30006"})
TEMPORARY = frozenset({"30003", "30008"})
OPT_OUT = frozenset({"21610"})
# Twilio's message statuses, onto ours: its accepted/scheduled/queued/sending all mean
# "handed over", i.e. our SENT; read (WhatsApp) is as good as delivered; a canceled
# scheduled message never went, i.e. failed for us.
STATUSES = {
    "accepted": MessageStatus.SENT,
    "scheduled": MessageStatus.SENT,
    "queued": MessageStatus.SENT,
    "sending": MessageStatus.SENT,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}


def status_of(word: str | None) -> MessageStatus | None:
    """Our status for Twilio's word (None when Twilio said something we do not know)."""
    return STATUSES.get((word or "").lower())


def classify(code: str | None) -> FailureClass:
    """The class of a Twilio error code (None or unknown: the message only)."""
    if code in PERMANENT:
        return FailureClass.PERMANENT
    if code in TEMPORARY:
        return FailureClass.TEMPORARY
    if code in OPT_OUT:
        return FailureClass.OPT_OUT
    return FailureClass.MESSAGE


def failure(code: str | None, text: str | None = None) -> Failure:
    """The Failure the outbox acts on, for a Twilio error code (and the error's text, which
    names a transient error that came without a code); its words become failure_reason."""
    return Failure(classify(code), code, words(code, text))


def rule(settings: Settings | None = None) -> StreakRule:
    """The streak rule from settings (the process's settings when none are given)."""
    return StreakRule.of(settings or get_settings())


def apply_status(
    session: Session,
    *,
    sid: str,
    status: str,
    error_code: str | None,
    source: str,
    settings: Settings | None = None,
) -> bool:
    """outbox.apply_status for a Twilio report (status: Twilio's word), in our words."""
    return outbox.apply_status(
        session,
        sid=sid,
        status=status_of(status),
        reported=status or None,
        error_code=error_code,
        source=source,
        reason=failure(error_code).words,
        failure=failure(error_code) if error_code else None,
        rule=rule(settings) if error_code else None,
    )


def mark_failed(
    session: Session,
    *,
    message_id: int,
    code: str | None,
    text: str,
    settings: Settings | None = None,
) -> bool:
    """outbox.mark_failed for a send Twilio refused, with what its code means."""
    return outbox.mark_failed(
        session,
        message_id=message_id,
        code=code,
        text=text,
        reason=failure(code, text).words,
        failure=failure(code) if code else None,
        rule=rule(settings) if code else None,
    )


def mark_retry(
    session: Session,
    *,
    message_id: int,
    error: str,
    error_code: str | None,
    retry_at: datetime,
    max_attempts: int,
) -> MessageStatus | None:
    """outbox.mark_retry for a transient error, with its words should it be the last try."""
    return outbox.mark_retry(
        session,
        message_id=message_id,
        error=error,
        error_code=error_code,
        reason=failure(error_code, error).words,
        retry_at=retry_at,
        max_attempts=max_attempts,
    )
