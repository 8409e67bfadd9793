"""SMS from borrowers: keywords (STOP / START / HELP / BAL), storage, and relay to the agent.

Choices:
- STOP and its aliases opt the borrower out and get no reply from us: Twilio answers its
  default opt-out keywords itself and refuses later sends (an opt-out failure).
- Opt-out words that are ordinary words too (END, QUIT, CANCEL), and START, HELP, BAL,
  count only as the whole message: "End of month I will pay" is news for the agent, not
  an opt-out. STOP, STOPALL and UNSUBSCRIBE count as the first word of a sentence too,
  erring towards honouring an opt-out. YES (a Twilio opt-in word) is not one here: a "yes"
  to a reminder is not consent to more of them.
- Replies go through the outbox (kind REPLY), so they are recorded, rate-limited, retried
  and refused to opted-out numbers like every other SMS.
- Every message from a known borrower is stored on the loan it concerns (relays.py);
  what has news in it waits for the bot to relay it (relayed_at NULL), a bare keyword does
  not (relayed_at = received_at: nothing to relay).
- A number we do not know gets nothing about any account in any reply.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db import clock
from db.agency import Agency
from db.models import (
    Borrower,
    InboundMessage,
    Loan,
    LoanEventKind,
    LoanState,
    MessageKind,
    Staff,
    StaffState,
)
from db.money import format_money
from db.services.access import LIVE_LOAN
from db.services.audit.write import AuditAction, audit, loan_event
from db.services.collection import receipts
from db.services.errors import InvalidInput
from db.services.loans import holds
from db.services.sms import outbox, reply_limit, suppressions
from db.services.sms.relays import NOT_A_DENIAL, RelayInfo, reply_loan
from db.services.sms.truth import WithdrawReason, withdraw_for_borrower
from db.session import rows_matched

log = logging.getLogger(__name__)

MAX_BODY = 1600
MAX_BAL_LOANS = 5
_PUNCTUATION = ".,!?;:-'\"()[]"


class Keyword(StrEnum):
    STOP = "STOP"
    START = "START"
    HELP = "HELP"
    BAL = "BAL"
    DISPUTE = "DISPUTE"
    NO = "NO"  # a denial of a payment receipt, only as the whole message (receipts.py)


# "No" alone answers many questions: it denies a payment only when a receipt was sent
# lately (handle_inbound); otherwise it is an ordinary reply for the agent.
_DENIALS = frozenset({"NO", "NOT PAID", "NOTPAID"})
_ALIASES = {
    "STOP": Keyword.STOP,
    "STOPALL": Keyword.STOP,
    "UNSUBSCRIBE": Keyword.STOP,
    "CANCEL": Keyword.STOP,
    "END": Keyword.STOP,
    "QUIT": Keyword.STOP,
    "START": Keyword.START,
    "UNSTOP": Keyword.START,
    "HELP": Keyword.HELP,
    "INFO": Keyword.HELP,
    "BAL": Keyword.BAL,
    "BALANCE": Keyword.BAL,
    "DISPUTE": Keyword.DISPUTE,
}
# DISPUTE leads a sentence too ("DISPUTE I repaid in March"): the rest is its note, relayed.
_IN_A_SENTENCE = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "DISPUTE"})


@dataclass(frozen=True)
class InboundResult:
    inbound_id: int
    keyword: Keyword | None
    reply_queued: bool
    relay: RelayInfo | None
    duplicate: bool = False


def keyword_of(body: str) -> Keyword | None:
    """The keyword a message is, or None for free text (see the module's choices)."""
    words = body.split()
    if not words:
        return None
    if " ".join(w.strip(_PUNCTUATION).upper() for w in words) in _DENIALS:
        return Keyword.NO
    first = words[0].strip(_PUNCTUATION).upper()
    found = _ALIASES.get(first)
    if found is not None and (len(words) == 1 or first in _IN_A_SENTENCE):
        return found
    return None


def normalise_phone(raw: str, *, region: str) -> str:
    """E.164 when the number parses (Twilio's From already is); else the raw sender, cut."""
    raw = (raw or "").strip()
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return raw[:20]
    if not phonenumbers.is_possible_number(number):
        return raw[:20]
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_body(body: str | None) -> str:
    """At most MAX_BODY characters; NUL removed (PostgreSQL text cannot hold it)."""
    return (body or "").replace("\x00", "").strip()[:MAX_BODY]


def _relevant_loan(session: Session, borrower_id: int, today: date) -> Loan | None:
    """The loan the message concerns (relays.reply_loan: the one we last texted about)."""
    return reply_loan(session, borrower_id=borrower_id, today=today)


def _store(
    session: Session,
    *,
    sid: str,
    phone: str,
    body: str,
    keyword: Keyword | None,
    borrower: Borrower | None,
    loan: Loan | None,
    relay: bool,
) -> int | None:
    """Insert the row once per provider SID; None when it was already there."""
    now = clock.utcnow()
    stmt = outbox.dialect_insert(session, InboundMessage).values(
        provider_sid=sid,
        from_phone=phone,
        body=body,
        keyword=keyword.value if keyword else None,
        borrower_id=borrower.id if borrower else None,
        loan_id=loan.id if loan else None,
        received_at=now,
        relayed_at=None if relay else now,
    )
    stmt = stmt.on_conflict_do_nothing(index_elements=["provider_sid"])
    return session.execute(stmt.returning(InboundMessage.id)).scalar_one_or_none()


def _help_text(agency: Agency, borrower: Borrower | None) -> str:
    call = f" call {agency.phone}" if agency.phone else " contact your agent"
    if borrower is None:
        return f"{agency.name}: for help{call}."
    return (
        f"{agency.name}: for help with your loan{call}. "
        "Reply BAL for your balance, STOP to opt out."
    )


def _balance_text(session: Session, agency: Agency, borrower: Borrower | None) -> str:
    if borrower is None:
        return f"{agency.name}: we could not find an account for this number."
    loans = session.scalars(
        select(Loan)
        .where(Loan.borrower_id == borrower.id, Loan.state == LoanState.ACTIVE, LIVE_LOAN)
        .order_by(Loan.loan_number)
    ).all()
    if not loans:
        return f"{agency.name}: you have no active loans."
    parts = [
        f"{ln.loan_number} {format_money(ln.outstanding, agency, plain=True)}"
        for ln in loans[:MAX_BAL_LOANS]
    ]
    more = f" and {len(loans) - MAX_BAL_LOANS} more" if len(loans) > MAX_BAL_LOANS else ""
    return f"{agency.name}: outstanding {'; '.join(parts)}{more}."


def _opt_in(session: Session, borrower: Borrower) -> bool:
    """Clear the borrower's opt-out; True when they were opted out."""
    result = session.execute(
        update(Borrower)
        .where(Borrower.id == borrower.id, Borrower.opted_out_at.is_not(None))
        .values(opted_out_at=None, updated_at=clock.utcnow())
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result) > 0


def _audit_opt(session: Session, borrower: Borrower, action: AuditAction) -> None:
    """The audit row of a borrower's own STOP / START (no staff member acted)."""
    audit(
        session,
        actor=None,
        action=action,
        target_type="borrower",
        target_id=borrower.id,
        details={"via": "sms"},
    )


def _dispute(
    session: Session, loan: Loan | None, text: str, agency: Agency, today: date
) -> tuple[str | None, Mapping[str, object]]:
    """DISPUTE: the loan the message concerns is disputed; reminders stop until reviewed."""
    if loan is None:
        return None, {}
    held = holds.dispute_by_borrower(session, loan_id=loan.id, note=text, today=today)
    reply = (
        f"{agency.signature}: we recorded your dispute about loan {loan.loan_number}. "
        "Reminders stop until a manager reviews it."
    )
    return reply, ({"disputed": True} if held is not None else {})


def _deny(
    session: Session, borrower: Borrower | None, phone: str, text: str
) -> receipts.Denial | None:
    if borrower is None:
        return None
    return receipts.deny_latest_payment(
        session, borrower=borrower, phone=phone, text=text, now=clock.utcnow()
    )


def _act(
    session: Session,
    keyword: Keyword | None,
    borrower: Borrower | None,
    phone: str,
    agency: Agency,
) -> tuple[str | None, Mapping[str, object]]:
    """Do what the keyword asks; return the reply text (or None) and what changed."""
    if keyword is Keyword.STOP:
        # Read from the database: opt_out() updates in SQL, so the object may be stale.
        was_out = (
            borrower is not None
            and session.scalar(select(Borrower.opted_out_at).where(Borrower.id == borrower.id))
            is not None
        )
        outbox.opt_out(session, borrower_id=borrower.id if borrower else None, phone=phone)
        if borrower is not None:  # nothing queued for them may go now
            withdraw_for_borrower(session, borrower=borrower, reason=WithdrawReason.OPTED_OUT)
        if borrower and not was_out:
            _audit_opt(session, borrower, AuditAction.BORROWER_OPTED_OUT)
        return None, ({"opted_out": True} if borrower and not was_out else {})
    if keyword is Keyword.START:
        # START also lifts an unreachable / opt-out suppression of the number (history kept).
        lifted = suppressions.lift_by_start(session, phone=phone)
        if borrower is None:
            return None, {}
        changed = _opt_in(session, borrower)
        if changed:
            _audit_opt(session, borrower, AuditAction.BORROWER_OPTED_IN)
        text = f"{agency.name}: you will receive messages from us again. Reply STOP to opt out."
        return text, ({"opted_out": False} if changed else {}) | (
            {"suppression_lifted": True} if lifted else {}
        )
    if keyword is Keyword.HELP:
        return _help_text(agency, borrower), {}
    if keyword is Keyword.BAL:
        return _balance_text(session, agency, borrower), {}
    return None, {}


def _queue_reply(
    session: Session,
    *,
    sid: str,
    phone: str,
    text: str | None,
    borrower: Borrower | None,
    loan: Loan | None,
) -> bool:
    """Queue the reply through the outbox (once per inbound SID); True when queued."""
    if not text or not reachable(phone):
        return False
    queued = outbox.queue_message(
        session,
        to=phone,
        body=text,
        kind=MessageKind.REPLY,
        idempotency_key=f"reply:{sid}",
        borrower_id=borrower.id if borrower else None,
        loan_id=loan.id if loan else None,
    )
    return queued is not None


def reachable(phone: str) -> bool:
    """Only a real number (not an alphanumeric sender) can be answered."""
    return phone.startswith("+") and phone[1:].isdigit() and len(phone) >= 8


def _duplicate(session: Session, sid: str, keyword: Keyword | None) -> InboundResult:
    """A webhook retried (or raced) with a SID already stored: nothing more is done."""
    stmt = select(InboundMessage.id).where(InboundMessage.provider_sid == sid)
    existing = session.scalar(stmt)
    log.info("inbound %s seen before (row %s)", sid, existing)
    return InboundResult(existing or 0, keyword, False, None, duplicate=True)


def handle_inbound(
    session: Session,
    *,
    provider_sid: str,
    from_phone: str,
    to_phone: str | None = None,
    body: str | None,
    agency: Agency,
    today: date,
    replies_per_hour: int = 3,
) -> InboundResult:
    """Store one inbound SMS once per provider SID, act on its keyword, queue any reply."""
    sid = (provider_sid or "").strip()
    if not sid or len(sid) > 64:
        raise InvalidInput("An inbound SMS needs its provider SID.", code="inbound_sid")
    phone, text = normalise_phone(from_phone, region=agency.region), clean_body(body)
    keyword = keyword_of(text)
    borrower = session.scalar(select(Borrower).where(Borrower.phone == phone))
    loan = _relevant_loan(session, borrower.id, today) if borrower else None
    denial = None
    if keyword is Keyword.NO:
        denial = _deny(session, borrower, phone, text)
        if denial is None:
            keyword = None  # no receipt to deny: an ordinary reply
        else:
            loan = session.get(Loan, denial.loan_id)
    news = keyword in (None, Keyword.DISPUTE, Keyword.NO) or len(text.split()) > 1
    inbound_id = _store(
        session,
        sid=sid,
        phone=phone,
        body=text,
        keyword=keyword,
        borrower=borrower,
        loan=loan,
        relay=news and loan is not None,
    )
    if inbound_id is None:
        return _duplicate(session, sid, keyword)
    changed: Mapping[str, object]
    if keyword is Keyword.DISPUTE:
        reply, changed = _dispute(session, loan, text, agency, today)
    elif denial is not None:
        reply = (
            f"{agency.signature}: we noted that you did not make payment {denial.receipt}. "
            "A manager will check it."
        )
        changed = {"payment_denied": denial.payment_id}
    else:
        reply, changed = _act(session, keyword, borrower, phone, agency)
    if reply and reply_limit.over_limit(session, phone=phone, per_hour=replies_per_hour):
        reply, changed = None, {**changed, "reply": reply_limit.RATE_LIMITED}
        reply_limit.record(session, inbound_id=inbound_id, state=reply_limit.RATE_LIMITED)
    queued = _queue_reply(session, sid=sid, phone=phone, text=reply, borrower=borrower, loan=loan)
    if queued:
        reply_limit.record(session, inbound_id=inbound_id, state=reply_limit.QUEUED)
    if loan is not None:
        loan_event(
            session,
            loan_id=loan.id,
            actor=None,
            kind=LoanEventKind.INBOUND_SMS,
            after={"inbound_id": inbound_id, "keyword": keyword, **changed},
            note=text[:200] or None,
        )
    session.flush()
    log.info("inbound %s stored as %s (keyword %s, to %s)", sid, inbound_id, keyword, to_phone)
    relay = _relays(session, inbound_id=inbound_id, limit=1)
    return InboundResult(inbound_id, keyword, queued, relay[0] if relay else None)


def _relays(session: Session, *, inbound_id: int | None = None, limit: int) -> list[RelayInfo]:
    # The agent is the loan's CURRENT one, so a message waits through a reassignment
    # and goes to whoever holds the loan when the bot next looks; never to a disabled agent.
    stmt = (
        select(InboundMessage, Loan.loan_number, Borrower.name, Staff)
        .join(Loan, Loan.id == InboundMessage.loan_id)
        .join(Borrower, Borrower.id == Loan.borrower_id)
        .join(Staff, Staff.id == Loan.agent_id)
        .where(
            InboundMessage.relayed_at.is_(None),
            Staff.state == StaffState.ACTIVE,
            NOT_A_DENIAL,
        )
        .order_by(InboundMessage.received_at, InboundMessage.id)
        .limit(limit)
    )
    if inbound_id is not None:
        stmt = stmt.where(InboundMessage.id == inbound_id)
    return [
        RelayInfo(
            inbound_id=msg.id,
            agent_chat_id=agent.telegram_chat_id or agent.telegram_user_id,
            agent_id=agent.id,
            borrower_name=name,
            loan_number=number,
            body=msg.body,
            received_at=msg.received_at,
        )
        for msg, number, name, agent in session.execute(stmt)
    ]


def pending_relays(session: Session, *, limit: int = 50) -> list[RelayInfo]:
    """Borrower messages the bot has yet to pass to the agent, oldest first."""
    if not 1 <= limit <= 500:
        raise InvalidInput("limit must be between 1 and 500.", code="limit")
    return _relays(session, limit=limit)


def mark_relayed(session: Session, *, inbound_ids: list[int]) -> int:
    """Record that the bot delivered these messages; returns how many were still pending."""
    if not inbound_ids:
        return 0
    result = session.execute(
        update(InboundMessage)
        .where(InboundMessage.id.in_(inbound_ids), InboundMessage.relayed_at.is_(None))
        .values(relayed_at=clock.utcnow())
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)
