"""Issue 9 items 3 and 4 at send time, with the real twilio client against the sandbox.

- The dispatcher re-checks each loan message just before sending: the loan is still open
  and at the version the text was written for, and the number is still the borrower's;
  otherwise the message is CANCELED with why, and the sandbox never sees it.
- A canceled broadcast sends nothing more: a message in flight at the cancel that comes
  back for a retry (429/5xx) or a deferral ends CANCELED, not QUEUED.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from db.config import Settings
from db.models import (
    Borrower,
    Broadcast,
    BroadcastState,
    HoldKind,
    Loan,
    LoanHold,
    LoanState,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    Role,
    Staff,
)
from db.services.broadcasts import compose as broadcasts
from db.services.loans import add as loans
from db.services.sms import outbox
from scheduler.dispatch import dispatch_due
from scheduler.sandbox import TwilioSandbox
from scheduler.sms import TwilioSender
from tests.factories import SMS_NOW, actor, make_borrower, make_loan, make_staff

pytestmark = pytest.mark.e2e

S = MessageStatus
NOW = SMS_NOW  # 10:30 in Kolkata: inside the allowed hours


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TwilioSandbox]:
    with TwilioSandbox(seed=17, hang_seconds=3.0) as sb:
        yield sb


@pytest.fixture
def cfg(settings: Settings) -> Settings:
    return settings.model_copy(update={"sms_rate_per_second": 500.0, "sms_batch_size": 50})


def _sender(sb: TwilioSandbox, token: str | None = None) -> TwilioSender:
    return TwilioSender(
        sb.account_sid,
        token or sb.auth_token,
        from_number=sb.phone_number,
        api_base_url=sb.base_url,
        timeout=0.5,
        environ={},
    )


@pytest.fixture
async def sender(sb: TwilioSandbox) -> AsyncIterator[TwilioSender]:
    s = _sender(sb)
    yield s
    await s.aclose()


async def _dispatch(factory, sender, cfg, now=NOW):
    return await dispatch_due(factory, sender, settings=cfg, worker_id="truth:1", now=now)


def _loan_with_reminder(factory: sessionmaker[Session]) -> tuple[int, int, str]:
    """(loan id, message id, phone): a reminder stamped with the loan's version."""
    with factory.begin() as s:
        agent = make_staff(s, role=Role.AGENT)
        loan = make_loan(s, agent=agent, principal=Decimal("2000.00"))
        info = outbox.queue_message(
            s,
            to=loan.borrower.phone,
            body=f"INR 2000.00 due on {loan.loan_number}",
            kind=MessageKind.REMINDER,
            idempotency_key=f"truth:{loan.id}",
            borrower_id=loan.borrower_id,
            loan_id=loan.id,
            send_after=NOW - timedelta(minutes=1),
        )
        return loan.id, info.id, loan.borrower.phone


def _fate(factory: sessionmaker[Session], message_id: int) -> tuple[MessageStatus, str | None]:
    with factory() as s:
        m = s.get(Message, message_id)
        last = s.scalars(
            select(MessageEvent.detail)
            .where(MessageEvent.message_id == m.id)
            .order_by(MessageEvent.id.desc())
            .limit(1)
        ).one()
        return S(m.status), last


# Changes that reached the database without a withdraw (another path, or one racing the
# claim): the send-time re-check alone must stop the message.
_CHANGES = {
    "closed": lambda loan_id: (
        update(Loan)
        .where(Loan.id == loan_id)
        .values(state=LoanState.CLOSED, version=Loan.version + 1)
    ),
    "loan_changed": lambda loan_id: (
        update(Loan)
        .where(Loan.id == loan_id)
        .values(amount_paid=Decimal("500.00"), version=Loan.version + 1)
    ),
    "phone_changed": lambda loan_id: (
        update(Borrower)
        .where(Borrower.id == select(Loan.borrower_id).where(Loan.id == loan_id).scalar_subquery())
        .values(phone="+919000099999")
    ),
}


@pytest.mark.parametrize("reason", sorted(_CHANGES))
async def test_a_message_untrue_at_send_time_is_canceled_not_sent(
    committed, sb, sender, cfg, at_now, reason
):
    loan_id, message_id, phone = _loan_with_reminder(committed)
    with committed.begin() as s:
        s.execute(_CHANGES[reason](loan_id))
    report = await _dispatch(committed, sender, cfg)
    assert (report.claimed, report.canceled, report.sent) == (1, 1, 0)
    assert _fate(committed, message_id) == (S.CANCELED, f"withdrawn: {reason}")
    assert sb.created_count(phone) == 0 and sb.created_count("+919000099999") == 0


async def test_a_message_of_an_archived_loan_is_canceled_not_sent(
    committed, sb, sender, cfg, at_now
):
    loan_id, message_id, phone = _loan_with_reminder(committed)
    with committed.begin() as s:  # archived behind the services' back: nothing withdrawn
        s.get(Loan, loan_id).archived_at = NOW
    report = await _dispatch(committed, sender, cfg)
    assert report.canceled == 1 and sb.created_count(phone) == 0
    assert _fate(committed, message_id) == (S.CANCELED, "withdrawn: archived")


async def test_a_reminder_of_a_loan_disputed_meanwhile_is_canceled_at_send_time(
    committed, sb, sender, cfg, at_now
):
    loan_id, message_id, phone = _loan_with_reminder(committed)
    with committed.begin() as s:  # disputed behind the services' back: nothing withdrawn
        s.add(LoanHold(loan_id=loan_id, kind=HoldKind.DISPUTE, note="not mine", opened_at=NOW))
    report = await _dispatch(committed, sender, cfg)
    assert report.canceled == 1 and sb.created_count(phone) == 0
    assert _fate(committed, message_id) == (S.CANCELED, "withdrawn: disputed")


async def test_a_reminder_after_a_hardship_pause_ended_is_sent(committed, sb, sender, cfg, at_now):
    loan_id, _message_id, phone = _loan_with_reminder(committed)
    with committed.begin() as s:  # a pause whose day has come holds nothing back
        until = NOW.date()
        s.add(
            LoanHold(
                loan_id=loan_id, kind=HoldKind.HARDSHIP, note="ill", opened_at=NOW, until=until
            )
        )
    report = await _dispatch(committed, sender, cfg)
    assert report.sent == 1 and sb.created_count(phone) == 1


async def test_a_change_that_keeps_the_text_true_still_sends(committed, sb, sender, cfg, at_now):
    loan_id, message_id, phone = _loan_with_reminder(committed)
    with committed.begin() as s:
        loan, other = s.get(Loan, loan_id), make_staff(s, role=Role.AGENT)
        manager = make_staff(s, role=Role.MANAGER)
        loans.reassign_loan(
            s,
            actor=actor(manager),
            loan_number=loan.loan_number,
            agent_id=other.id,
            today=NOW.date(),
        )
    report = await _dispatch(committed, sender, cfg)
    assert (report.sent, report.canceled) == (1, 0)
    assert _fate(committed, message_id)[0] is S.SENT and sb.created_count(phone) == 1


# --- item 4: a canceled broadcast sends nothing more -----------------------------------


def _broadcast_message(factory: sessionmaker[Session]) -> tuple[int, int, int, str]:
    """(broadcast id, message id, admin id, phone): one queued broadcast message."""
    with factory.begin() as s:
        admin = make_staff(s, role=Role.ADMIN)
        b = Broadcast(
            audience={"kind": "all_active"},
            template="Office closed Monday.",
            state=BroadcastState.QUEUED,
            created_by_id=admin.id,
        )
        s.add(b)
        s.flush()
        borrower = make_borrower(s)
        info = outbox.queue_message(
            s,
            to=borrower.phone,
            body="Office closed Monday.",
            kind=MessageKind.BROADCAST,
            idempotency_key=f"bc:{b.id}:{borrower.id}",
            borrower_id=borrower.id,
            broadcast_id=b.id,
            send_after=NOW - timedelta(minutes=1),
        )
        return b.id, info.id, admin.id, borrower.phone


class CancelsMidFlight:
    """The real sender; the admin cancels the broadcast while the request is in flight."""

    def __init__(
        self, inner: TwilioSender, factory: sessionmaker[Session], broadcast_id: int, admin_id: int
    ) -> None:
        self.inner, self.factory = inner, factory
        self.broadcast_id, self.admin_id = broadcast_id, admin_id

    def _cancel(self) -> None:
        with self.factory.begin() as s:
            admin = actor(s.get(Staff, self.admin_id))
            broadcasts.cancel_broadcast(s, actor=admin, broadcast_id=self.broadcast_id)

    async def send(self, **kwargs):
        await asyncio.to_thread(self._cancel)
        return await self.inner.send(**kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("outcome", [429, 500, 503])
async def test_a_retry_after_the_cancel_ends_canceled(committed, sb, sender, cfg, at_now, outcome):
    broadcast_id, message_id, admin_id, phone = _broadcast_message(committed)
    sb.script(outcome)
    canceling = CancelsMidFlight(sender, committed, broadcast_id, admin_id)
    report = await _dispatch(committed, canceling, cfg)
    assert report.claimed == 1 and report.sent == 0
    assert _fate(committed, message_id) == (S.CANCELED, "broadcast canceled while in flight")
    later = await _dispatch(committed, sender, cfg, now=NOW + timedelta(hours=2))
    assert later.claimed == 0 and sb.created_count(phone) == 0


async def test_a_deferral_after_the_cancel_ends_canceled(committed, sb, cfg, at_now):
    broadcast_id, message_id, admin_id, _ = _broadcast_message(committed)
    refused = _sender(sb, token="not-the-token")  # the account refused: the message is held
    try:
        canceling = CancelsMidFlight(refused, committed, broadcast_id, admin_id)
        report = await _dispatch(committed, canceling, cfg)
    finally:
        await refused.aclose()
    assert report.claimed == 1 and report.sent == 0
    assert _fate(committed, message_id) == (S.CANCELED, "broadcast canceled while in flight")
    async with asyncio.timeout(30):
        right = _sender(sb)
        try:
            later = await _dispatch(committed, right, cfg, now=NOW + timedelta(hours=2))
        finally:
            await right.aclose()
    assert later.claimed == 0 and not sb.messages


async def test_cancel_is_allowed_while_every_message_is_in_flight(committed, sb, at_now):
    broadcast_id, message_id, admin_id, _ = _broadcast_message(committed)
    with committed.begin() as s:
        outbox.claim_due(s, now=NOW, limit=10, worker_id="w")
    with committed.begin() as s:
        admin = actor(s.get(Staff, admin_id))
        info = broadcasts.cancel_broadcast(s, actor=admin, broadcast_id=broadcast_id)
    assert info.state is BroadcastState.CANCELED
    with committed.begin() as s:
        status = outbox.mark_retry(
            s, message_id=message_id, error="503", retry_at=NOW, max_attempts=5
        )
    assert status is S.CANCELED
    assert _fate(committed, message_id)[0] is S.CANCELED


async def test_a_retry_racing_the_cancel_waits_for_it_and_ends_canceled(
    committed, sb, at_now, database_url
):
    """PostgreSQL: the retry reads the broadcast under a share lock, so it waits for a
    cancel in progress and then sees it (without the lock it would requeue the message)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("row locks: a PostgreSQL setup")
    broadcast_id, message_id, admin_id, _ = _broadcast_message(committed)
    with committed.begin() as s:
        outbox.claim_due(s, now=NOW, limit=10, worker_id="w")
    canceling = committed()
    canceling.begin()
    broadcasts.cancel_broadcast(
        canceling, actor=actor(canceling.get(Staff, admin_id)), broadcast_id=broadcast_id
    )

    def retry() -> MessageStatus | None:
        with committed.begin() as s:
            return outbox.mark_retry(
                s, message_id=message_id, error="503", retry_at=NOW, max_attempts=5
            )

    retrying = asyncio.ensure_future(asyncio.to_thread(retry))
    with committed() as s:  # until the retry waits on the broadcast's row lock
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        while not s.scalar(waiting) and not retrying.done():
            await asyncio.sleep(0.01)
            s.rollback()
    canceling.commit()
    canceling.close()
    assert await retrying is S.CANCELED
    assert _fate(committed, message_id)[0] is S.CANCELED
