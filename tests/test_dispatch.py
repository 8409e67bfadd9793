"""The dispatcher and the reconciler against the sandbox Twilio API, over real HTTP.

The real TwilioSender (the twilio client) talks to scheduler.sandbox; the database is
real and committed, since the dispatcher writes from worker threads.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.config import Settings
from db.migrate import upgrade
from db.models import Borrower, Message, MessageEvent, MessageKind, MessageStatus, Suppression
from db.services.sms import outbox
from db.session import make_engine, make_session_factory
from scheduler.dispatch import Dispatcher, ReconcileReport, dispatch_due, reconcile, stuck_after
from scheduler.sandbox import CallbackTiming, TwilioSandbox
from scheduler.sms import ConsoleSender, SendResult, TwilioSender
from scheduler.worker import build_scheduler
from tests.factories import SMS_NOW, make_borrower

pytestmark = pytest.mark.e2e

S = MessageStatus
NOW = SMS_NOW  # 10:30 in Kolkata: inside the allowed hours
_keys = itertools.count(1)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[TwilioSandbox]:
    with TwilioSandbox(seed=11, hang_seconds=3.0) as sb:
        yield sb


@pytest.fixture
def cfg(settings: Settings) -> Settings:
    return settings.model_copy(update={"sms_rate_per_second": 500.0, "sms_batch_size": 50})


@pytest.fixture
async def sender(sb: TwilioSandbox) -> AsyncIterator[TwilioSender]:
    s = TwilioSender(
        sb.account_sid,
        sb.auth_token,
        from_number=sb.phone_number,
        api_base_url=sb.base_url,
        timeout=0.5,
        environ={},
    )
    yield s
    await s.aclose()


def _queue(factory: sessionmaker[Session], n: int = 1, **borrower_kw) -> list[outbox.MessageInfo]:
    with factory.begin() as s:
        out = []
        for _ in range(n):
            b = make_borrower(s, **borrower_kw)
            info = outbox.queue_message(
                s,
                to=b.phone,
                body=f"Payment due, ref {next(_keys)}",
                kind=MessageKind.REMINDER,
                idempotency_key=f"d:{next(_keys)}",
                borrower_id=b.id,
                send_after=NOW - timedelta(minutes=1),
            )
            out.append(info)
        return out


def _row(factory: sessionmaker[Session], message_id: int) -> Message:
    with factory() as s:
        return s.get(Message, message_id)


async def _dispatch(factory, sender, cfg, now=NOW, worker="test:1"):
    return await dispatch_due(factory, sender, settings=cfg, worker_id=worker, now=now)


async def test_sends_and_records_the_sid(committed, sb, sender, cfg, at_now):
    queued = _queue(committed, 3)
    report = await _dispatch(committed, sender, cfg)
    assert (report.claimed, report.sent) == (3, 3)
    for info in queued:
        row = _row(committed, info.id)
        [remote] = sb.messages_to(info.to)
        assert (row.status, row.provider_sid, row.segments) == (S.SENT, remote.sid, 1)
        assert remote.body == info.body and row.attempts == 1
    assert (await _dispatch(committed, sender, cfg)).claimed == 0


async def test_the_status_callback_url_is_passed(committed, sb, sender, cfg, at_now):
    cfg = cfg.model_copy(update={"public_base_url": "http://127.0.0.1:9"})
    [info] = _queue(committed)
    await _dispatch(committed, sender, cfg)
    assert sb.messages_to(info.to)[0].status_callback == "http://127.0.0.1:9/twilio/status"


@pytest.mark.parametrize(
    ("script", "min_wait"),
    [
        (dict(outcome=429, retry_after=7), 7.0),
        (dict(outcome=500), 1.0),
        (dict(outcome=503), 1.0),
        (dict(outcome="timeout"), 1.0),
        (dict(outcome="disconnect"), 1.0),
    ],
)
async def test_transient_errors_back_off_then_send_once(
    committed, sb, sender, cfg, at_now, script, min_wait
):
    [info] = _queue(committed)
    sb.script(**script)
    first = await _dispatch(committed, sender, cfg)
    row = _row(committed, info.id)
    assert first.retried == 1 and row.status is S.QUEUED and row.attempts == 1
    wait = (row.send_after - NOW).total_seconds()
    assert min_wait <= wait <= cfg.sms_retry_base_seconds + min_wait
    assert row.error_message and sb.created_count(info.to) == 0
    assert row.failure_reason is None  # not failed: it will be tried again
    assert (await _dispatch(committed, sender, cfg)).claimed == 0  # not before its time
    second = await _dispatch(committed, sender, cfg, now=row.send_after + timedelta(seconds=1))
    row = _row(committed, info.id)
    assert second.sent == 1 and row.status is S.SENT and row.attempts == 2
    assert sb.created_count(info.to) == 1


@pytest.mark.parametrize("outcome", [500, "timeout", "disconnect"])
async def test_a_lost_answer_for_a_created_message_is_not_sent_again(
    committed, sb, sender, cfg, at_now, outcome
):
    [info] = _queue(committed)
    sb.script(outcome, created=True)
    report = await _dispatch(committed, sender, cfg)
    row = _row(committed, info.id)
    [remote] = sb.messages_to(info.to)
    assert report.sent == 1 and row.provider_sid == remote.sid
    assert row.status is S.DELIVERED  # what Twilio says of it, asked at once
    assert sb.created_count(info.to) == 1


async def test_a_timed_out_send_twilio_accepted_but_not_yet_sent_is_not_sent_again(
    committed, sb, sender, cfg, at_now
):
    """Issue 9 item 6: queued at Twilio (no DateSent yet) when the answer is lost."""
    [info] = _queue(committed)
    sb.callback_timing = CallbackTiming(hold=True)  # accepted/queued, date_sent stays empty
    sb.script("timeout", created=True)
    report = await _dispatch(committed, sender, cfg)
    [remote] = sb.messages_to(info.to)
    row = _row(committed, info.id)
    assert remote.date_sent is None and remote.status == "queued"
    assert report.sent == 1 and (row.status, row.provider_sid) == (S.SENT, remote.sid)
    assert (await _dispatch(committed, sender, cfg, now=NOW + timedelta(hours=1))).claimed == 0
    assert sb.created_count(info.to) == 1


async def test_a_failed_lost_send_check_never_reads_as_not_sent(committed, sb, sender, cfg, at_now):
    [info] = _queue(committed)
    sb.callback_timing = CallbackTiming(hold=True)
    sb.script(500, created=True)
    sb.script(500, on="list")  # the check itself fails: the message stays for reconcile
    report = await _dispatch(committed, sender, cfg)
    assert report.unknown == 1 and _row(committed, info.id).status is S.SENDING
    later = NOW + timedelta(minutes=11)
    assert (await reconcile(committed, sender, settings=cfg, now=later)).recovered == 1
    assert _row(committed, info.id).status is S.SENT and sb.created_count(info.to) == 1


async def test_a_retry_asks_first_and_adopts_an_attempt_that_landed_late(
    committed, sb, sender, cfg, at_now
):
    """The timed-out request reached Twilio only after its own check: the retry finds it."""
    [info] = _queue(committed)
    sb.script("timeout")  # no message yet: the check right after the timeout finds nothing
    first = await _dispatch(committed, sender, cfg)
    row = _row(committed, info.id)
    assert first.retried == 1 and row.status is S.QUEUED and sb.created_count(info.to) == 0
    late = await sender.send(to=info.to, body=info.body)  # ...then the request lands
    second = await _dispatch(committed, sender, cfg, now=row.send_after + timedelta(seconds=1))
    row = _row(committed, info.id)
    assert second.sent == 1 and row.provider_sid == late.sid
    assert sb.created_count(info.to) == 1


async def test_a_retry_after_a_429_does_not_ask_first(committed, sb, sender, cfg, at_now):
    [info] = _queue(committed)
    sb.script(429, retry_after=1)
    await _dispatch(committed, sender, cfg)
    row = _row(committed, info.id)
    assert row.error_code == "20429"
    lists = sb.request_count("list")
    assert (await _dispatch(committed, sender, cfg, now=row.send_after + timedelta(1))).sent == 1
    assert sb.request_count("list") == lists and sb.created_count(info.to) == 1


async def test_max_attempts_ends_failed(committed, sb, sender, cfg, at_now):
    cfg = cfg.model_copy(update={"sms_max_attempts": 2})
    [info] = _queue(committed)
    sb.script(429, times=2)
    await _dispatch(committed, sender, cfg)
    later = _row(committed, info.id).send_after + timedelta(seconds=1)
    report = await _dispatch(committed, sender, cfg, now=later)
    row = _row(committed, info.id)
    assert report.failed == 1 and row.status is S.FAILED and row.attempts == 2
    assert row.error_code == "20429" and sb.created_count(info.to) == 0
    assert row.failure_reason == "too many requests to Twilio (retried, then gave up)"


async def test_a_timeout_given_up_records_the_words_without_a_code(
    committed, sb, sender, cfg, at_now
):
    cfg = cfg.model_copy(update={"sms_max_attempts": 1})
    [info] = _queue(committed)
    sb.script("timeout")  # the check right after finds nothing: a plain retry, the last one
    report = await _dispatch(committed, sender, cfg)
    row = _row(committed, info.id)
    assert report.failed == 1 and (row.status, row.error_code) == (S.FAILED, None)
    assert row.failure_reason == "Twilio did not answer in time (retried, then gave up)"


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (21211, "invalid phone number"),
        (21614, "not a mobile number"),
        (21408, "SMS to this country is not enabled on the Twilio account"),
    ],
)
async def test_permanent_errors_fail_with_the_code(committed, sb, sender, cfg, at_now, code, words):
    [info] = _queue(committed)
    sb.fail_number(info.to, code=code)
    report = await _dispatch(committed, sender, cfg)
    row = _row(committed, info.id)
    assert report.failed == 1 and (row.status, row.error_code) == (S.FAILED, str(code))
    assert row.attempts == 1 and row.failure_reason == words


async def test_a_refused_account_keeps_messages_queued(committed, sb, cfg, at_now):
    queued = _queue(committed, 3)
    wrong = TwilioSender(
        sb.account_sid,
        "not-the-token",
        from_number=sb.phone_number,
        api_base_url=sb.base_url,
        timeout=0.5,
        environ={},
    )
    try:
        report = await _dispatch(committed, wrong, cfg)
    finally:
        await wrong.aclose()
    assert (report.held, report.failed, report.sent) == (3, 0, 0)
    for info in queued:
        row = _row(committed, info.id)
        assert (row.status, row.attempts) == (S.QUEUED, 0)
        assert row.send_after >= NOW + timedelta(minutes=4)
    assert not sb.messages
    # With the right token, a later run sends each exactly once.
    sender = TwilioSender(
        sb.account_sid,
        sb.auth_token,
        from_number=sb.phone_number,
        api_base_url=sb.base_url,
        timeout=0.5,
        environ={},
    )
    try:
        later = await _dispatch(committed, sender, cfg, now=NOW + timedelta(minutes=6))
    finally:
        await sender.aclose()
    assert later.sent == 3 and all(len(sb.messages_to(i.to)) == 1 for i in queued)


async def test_21610_fails_and_opts_the_borrower_out(committed, sb, sender, cfg, at_now):
    [info] = _queue(committed)
    sb.fail_number(info.to, code=21610)
    await _dispatch(committed, sender, cfg)
    with committed.begin() as s:
        assert s.get(Message, info.id).error_code == "21610"
        assert s.get(Borrower, info.borrower_id).opted_out_at is not None
        later = outbox.queue_message(
            s,
            to=info.to,
            body="Another",
            kind=MessageKind.NOTICE,
            idempotency_key="d:after",
            borrower_id=info.borrower_id,
            send_after=NOW - timedelta(minutes=1),
        )
    report = await _dispatch(committed, sender, cfg)
    assert report.suppressed == 1 and _row(committed, later.id).error_message == "opted out"
    assert sb.request_count("create") == 1


async def test_policy_suppresses_and_defers_before_sending(committed, sb, sender, cfg, at_now):
    [opted] = _queue(committed, opted_out_at=NOW - timedelta(days=1))
    [asleep] = _queue(committed, timezone="America/New_York")  # midnight there
    report = await _dispatch(committed, sender, cfg)
    assert (report.suppressed, report.deferred, report.sent) == (1, 1, 0)
    assert _row(committed, opted.id).status is S.SUPPRESSED
    row = _row(committed, asleep.id)
    assert (row.status, row.attempts) == (S.QUEUED, 0)
    assert row.send_after == datetime(2030, 1, 15, 13, 0, tzinfo=UTC)
    assert sb.messages == []


async def test_console_sender_records_sent_then_delivered(committed, cfg, at_now, capsys):
    [info] = _queue(committed)
    console = ConsoleSender()
    report = await _dispatch(committed, console, cfg)
    row = _row(committed, info.id)
    assert report.sent == 1 and row.status is S.DELIVERED
    assert row.provider_sid == console.sent[0].sid
    assert "SMS to" in capsys.readouterr().out


# --- batches in flight and grouped writes ---------------------------------------------------


class GatedSender(ConsoleSender):
    """The console sender, holding every send until the gate opens."""

    def __init__(self) -> None:
        super().__init__(out=io.StringIO())
        self.gate = asyncio.Event()

    async def send(self, *, to: str, body: str, status_callback: str | None = None):
        await self.gate.wait()
        return await super().send(to=to, body=body, status_callback=status_callback)


class OneSidSender(ConsoleSender):
    """A provider that answers every send with the same SID, which only one row may hold."""

    async def send(self, *, to: str, body: str, status_callback: str | None = None):
        await super().send(to=to, body=body, status_callback=status_callback)
        return SendResult(sid="SMsame", status="queued", segments=1)


def _statuses(factory: sessionmaker[Session], ids: list[int]) -> list[MessageStatus]:
    with factory() as s:
        return list(s.scalars(select(Message.status).where(Message.id.in_(ids))))


def _worker_events(factory: sessionmaker[Session], message_id: int) -> list[str]:
    with factory() as s:
        stmt = select(MessageEvent.status).where(
            MessageEvent.message_id == message_id, MessageEvent.source == "worker"
        )
        return list(s.scalars(stmt.order_by(MessageEvent.id)))


async def test_the_next_batch_is_claimed_while_one_sends_but_no_more(committed, cfg, at_now):
    cfg = cfg.model_copy(update={"sms_batch_size": 4})
    ids = [info.id for info in _queue(committed, 13)]
    sender = GatedSender()
    run = asyncio.create_task(_dispatch(committed, sender, cfg))
    for _ in range(300):
        if _statuses(committed, ids).count(S.SENDING) >= 8:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # a third claim would show by now
    assert _statuses(committed, ids).count(S.SENDING) == 8  # two batches, nothing sent yet
    sender.gate.set()
    report = await run
    assert (report.claimed, report.sent, report.unknown) == (13, 13, 0)
    assert set(_statuses(committed, ids)) == {S.DELIVERED}
    assert sorted(m.to for m in sender.sent) == sorted({m.to for m in sender.sent})


async def test_several_batches_end_each_message_in_exactly_one_outcome(
    committed, sb, sender, cfg, at_now
):
    cfg = cfg.model_copy(update={"sms_batch_size": 4})
    queued = _queue(committed, 15)
    refused = queued[4::5]  # none in the first batch, which takes the 429
    for info in refused:
        sb.fail_number(info.to, code=21211)
    sb.script(429)  # one of the first batch is told to come back later
    report = await _dispatch(committed, sender, cfg)
    assert (report.claimed, report.sent, report.failed, report.retried) == (15, 11, 3, 1)
    assert report.unknown == 0
    outcomes = {info.id: _worker_events(committed, info.id) for info in queued}
    for info in queued:
        [claimed, outcome] = outcomes[info.id]
        assert claimed == "sending" and outcome in ("sent", "queued", "failed")
        assert (outcome == "failed") is (info in refused)
        assert sb.created_count(info.to) == (1 if outcome == "sent" else 0)
    assert sorted(o for _c, o in outcomes.values()) == ["failed"] * 3 + ["queued"] + ["sent"] * 11


async def test_a_result_that_cannot_be_written_spoils_none_of_its_group(committed, cfg, at_now):
    ids = [info.id for info in _queue(committed, 3)]
    report = await _dispatch(committed, OneSidSender(out=io.StringIO()), cfg)
    # Written together first: the duplicate SID fails that transaction, then one by one.
    assert (report.sent, report.unknown) == (1, 2)
    assert sorted(_statuses(committed, ids)) == sorted([S.SENT, S.SENDING, S.SENDING])
    with committed() as s:
        assert s.scalar(select(Message.provider_sid).where(Message.status == S.SENT)) == "SMsame"


async def _until(check, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_a_stop_puts_back_what_was_claimed_but_not_handed_over(
    committed, sb, sender, cfg, at_now
):
    slow = cfg.model_copy(update={"sms_rate_per_second": 2.0, "sms_batch_size": 20})
    queued = _queue(committed, 20)
    stop = asyncio.Event()
    run = asyncio.create_task(
        dispatch_due(committed, sender, settings=slow, worker_id="test:1", now=NOW, stop=stop)
    )
    await _until(lambda: sb.request_count("create") >= 2)
    stop.set()
    loop = asyncio.get_running_loop()
    stopped_at = loop.time()
    report = await run
    # At 2 a second the batch would need 10 s; the stop only waits for sends under way.
    assert loop.time() - stopped_at < 2.0
    assert report.claimed == 20 and report.sent >= 2 and report.sent + report.released == 20
    assert report.unknown == report.failed == 0
    rows = {info.id: _row(committed, info.id) for info in queued}
    sent = {i for i, row in rows.items() if row.status is S.SENT}
    assert len(sent) == report.sent == sum(sb.created_count(info.to) for info in queued)
    for info in queued:
        row = rows[info.id]
        if info.id in sent:
            assert sb.created_count(info.to) == 1 and row.attempts == 1
            continue
        # Back in its place in the queue, its attempt given back, never seen by Twilio.
        assert (row.status, row.attempts, row.claimed_by) == (S.QUEUED, 0, None)
        assert row.send_after == info.send_after and sb.created_count(info.to) == 0
        assert _worker_events(committed, info.id) == ["sending", "queued"]
    again = await _dispatch(committed, sender, cfg)
    assert (again.claimed, again.sent) == (report.released, report.released)
    assert all(sb.created_count(info.to) == 1 for info in queued)
    assert {_row(committed, info.id).attempts for info in queued} == {1}


# --- reconcile ---------------------------------------------------------------------------


def _claim(factory, info) -> None:
    with factory.begin() as s:
        claimed = outbox.claim_due(s, now=NOW, limit=1000, worker_id="dead:1")
        assert info.id in {m.id for m in claimed}


async def test_a_worker_killed_after_sending_is_marked_sent_not_resent(
    committed, sb, sender, cfg, at_now
):
    [info] = _queue(committed)
    _claim(committed, info)
    sent = await sender.send(to=info.to, body=info.body)  # ...and the worker dies here
    # Too early: a live worker may still be sending it.
    early = await reconcile(committed, sender, settings=cfg, now=NOW + timedelta(minutes=1))
    assert early == ReconcileReport() and _row(committed, info.id).status is S.SENDING
    report = await reconcile(committed, sender, settings=cfg, now=NOW + timedelta(minutes=11))
    row = _row(committed, info.id)
    # Its SID, and the status Twilio reports for it (the sandbox delivers at once).
    assert report.recovered == 1 and row.provider_sid == sent.sid
    assert row.status is S.DELIVERED
    assert (await _dispatch(committed, sender, cfg, now=NOW + timedelta(minutes=12))).claimed == 0
    assert sb.created_count(info.to) == 1


async def test_a_worker_killed_before_sending_is_requeued_and_sent_once(
    committed, sb, sender, cfg, at_now
):
    [info] = _queue(committed)
    _claim(committed, info)
    later = NOW + timedelta(minutes=11)
    report = await reconcile(committed, sender, settings=cfg, now=later)
    assert report.requeued == 1 and _row(committed, info.id).status is S.QUEUED
    assert (await _dispatch(committed, sender, cfg, now=later)).sent == 1
    assert sb.created_count(info.to) == 1


async def test_two_stuck_messages_to_one_number_do_not_share_a_sid(
    committed, sb, sender, cfg, at_now
):
    [a] = _queue(committed)
    with committed.begin() as s:
        b = outbox.queue_message(
            s,
            to=a.to,
            body=a.body,
            kind=MessageKind.NOTICE,
            idempotency_key="d:second",
            borrower_id=a.borrower_id,
            send_after=NOW - timedelta(minutes=1),
        )
    _claim(committed, a)
    sent = await sender.send(to=a.to, body=a.body)  # only one of the two reached Twilio
    report = await reconcile(committed, sender, settings=cfg, now=NOW + timedelta(minutes=11))
    assert (report.recovered, report.requeued) == (1, 1)
    rows = [_row(committed, a.id), _row(committed, b.id)]
    assert sorted(r.status for r in rows) == [S.DELIVERED, S.QUEUED]
    assert [r.provider_sid for r in rows if r.provider_sid] == [sent.sid]


async def test_a_claim_too_old_to_send_is_put_back_unsent(committed, sb, sender, cfg, at_now):
    """A worker that stalled half its lease between claim and send leaves the message."""
    [info] = _queue(committed)
    with committed.begin() as s:
        [m] = outbox.claim_due(s, now=NOW, limit=1, worker_id="slow:1", claimed_at=NOW)
    run = Dispatcher(committed, sender, cfg, None, NOW + stuck_after(cfg) / 2, None)
    run.worker_id = "slow:1"
    await run.send(m)
    row = _row(committed, info.id)
    assert run.tally["released"] == 1 and sb.created_count(info.to) == 0
    assert (row.status, row.attempts, row.claimed_by) == (S.QUEUED, 0, None)


async def test_reconcile_settles_a_claim_once_sms_claim_seconds_have_passed(
    committed, sb, sender, cfg, at_now
):
    cfg = cfg.model_copy(update={"sms_claim_seconds": 30.0})
    [info] = _queue(committed)
    _claim(committed, info)
    early = await reconcile(committed, sender, settings=cfg, now=NOW + timedelta(seconds=29))
    late = await reconcile(committed, sender, settings=cfg, now=NOW + timedelta(seconds=31))
    assert (early.requeued, late.requeued) == (0, 1)
    assert _row(committed, info.id).status is S.QUEUED and sb.created_count(info.to) == 0


@pytest.mark.parametrize(
    ("outcome", "code", "status"),
    [
        ("delivered", None, S.DELIVERED),
        ("undelivered", 30006, S.UNDELIVERED),
        ("failed", 30005, S.FAILED),
    ],
)
async def test_reconcile_asks_about_sent_messages_without_a_final_status(
    committed, sb, sender, cfg, at_now, outcome, code, status
):
    words = {
        None: None,
        30006: "landline or unreachable carrier",
        30005: "unknown number (not in service)",
    }
    [info] = _queue(committed)
    sb.set_delivery(info.to, outcome, error_code=code)
    await _dispatch(committed, sender, cfg)  # no public URL: no callbacks come back
    sb.wait_callbacks()
    assert _row(committed, info.id).status is S.SENT
    assert (await reconcile(committed, sender, settings=cfg, now=NOW)).polled == 0
    report = await reconcile(committed, sender, settings=cfg, now=NOW + timedelta(hours=3))
    row = _row(committed, info.id)
    assert (report.polled, report.updated) == (1, 1) and row.status is status
    assert row.failure_reason == words[code]
    with committed() as s:
        sources = s.scalars(select(MessageEvent.source).where(MessageEvent.message_id == info.id))
        assert "poll" in list(sources)
        assert (s.get(Suppression, info.to) is not None) is (code is not None)


# --- several workers ------------------------------------------------------------------------


def _bulk_queue(factory, n: int) -> list[str]:
    phones = [f"+9197{i:08d}" for i in range(n)]
    with factory.begin() as s:
        for phone in phones:
            outbox.queue_message(
                s,
                to=phone,
                body="Broadcast: office closed Friday.",
                kind=MessageKind.BROADCAST,
                idempotency_key=f"bulk:{phone}",
                send_after=NOW - timedelta(minutes=1),
            )
    return phones


def test_three_dispatchers_drain_the_outbox_without_duplicates(
    committed, database_url, sb, cfg, at_now
):
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: concurrent workers are a PostgreSQL setup")
    phones = _bulk_queue(committed, 2000)
    cfg = cfg.model_copy(update={"sms_rate_per_second": 1000.0, "sms_batch_size": 100})
    reports, errors = [], []

    def worker(n: int) -> None:
        engine = make_engine(database_url, pool_size=5)
        sender = TwilioSender(
            sb.account_sid,
            sb.auth_token,
            from_number=sb.phone_number,
            api_base_url=sb.base_url,
            timeout=5.0,
            environ={},
        )

        async def run():
            try:
                factory = make_session_factory(engine)
                return await dispatch_due(factory, sender, settings=cfg, worker_id=f"w:{n}")
            finally:
                await sender.aclose()

        try:
            reports.append(asyncio.run(run()))
        except Exception as exc:  # reported below, with the thread's own error
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert sum(r.sent for r in reports) == 2000
    assert sum(1 for r in reports if r.sent) >= 2  # the work was really shared
    assert all(sb.created_count(p) == 1 for p in phones)
    assert len(sb.messages) == 2000
    with committed() as s:
        statuses = s.scalars(select(Message.status).where(Message.idempotency_key.like("bulk:%")))
        assert set(statuses) == {S.SENT}


# --- the worker process ----------------------------------------------------------------------


def test_build_scheduler_adds_every_job_once(committed, settings):
    scheduler = build_scheduler(settings, committed, ConsoleSender(), worker="test:w")
    found = {job.id: job for job in scheduler.get_jobs()}
    assert set(found) == {
        "dispatch",
        "plan",
        "plan_at_start",
        "reconcile",
        "daily",
        "daily_at_start",
    }
    assert all(job.max_instances == 1 and job.coalesce for job in found.values())
    daily = found["daily"].trigger
    assert isinstance(daily, CronTrigger) and str(daily.timezone) == "Asia/Kolkata"
    assert {f.name: str(f) for f in daily.fields if f.name in ("hour", "minute")} == {
        "hour": "6",
        "minute": "0",
    }
    assert found["dispatch"].trigger.interval == timedelta(seconds=5)


async def test_the_worker_sends_what_is_queued_and_stops_cleanly(committed, cfg, at_now):
    [info] = _queue(committed)
    cfg = cfg.model_copy(update={"dispatch_interval_seconds": 0.1})
    scheduler = build_scheduler(cfg, committed, ConsoleSender(), worker="test:w")
    scheduler.start()
    try:
        for _ in range(200):
            if _row(committed, info.id).status is S.DELIVERED:
                break
            await asyncio.sleep(0.05)
    finally:
        await scheduler.drain(timeout=5)
    await asyncio.sleep(0.05)  # shutdown runs on the loop's next turn
    row = _row(committed, info.id)
    assert (row.status, row.claimed_by) == (S.DELIVERED, "test:w")
    assert not scheduler.running


async def test_draining_the_worker_puts_back_the_unsent_batch(committed, sb, sender, cfg, at_now):
    ids = [info.id for info in _queue(committed, 20)]
    cfg = cfg.model_copy(
        update={"sms_rate_per_second": 2.0, "sms_batch_size": 20, "dispatch_interval_seconds": 0.1}
    )
    scheduler = build_scheduler(cfg, committed, sender, worker="test:w")
    scheduler.start()
    try:
        await _until(lambda: sb.request_count("create") >= 1)
    finally:
        await scheduler.drain(timeout=5)  # were the dispatch cancelled, rows would stay SENDING
    statuses = _statuses(committed, ids)
    assert S.SENDING not in statuses and statuses.count(S.QUEUED) >= 15
    assert len(ids) - statuses.count(S.QUEUED) == sb.request_count("create")


def _worker_env(tmp_path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMS_"))}
    return env | {"SMS_BACKEND": "console"} | extra


def test_python_m_scheduler_stops_with_one_line_on_a_bad_setting(tmp_path):
    env = _worker_env(tmp_path, DATABASE_URL="mysql://nope")
    done = subprocess.run(
        [sys.executable, "-m", "scheduler"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "DATABASE_URL" in done.stderr


def test_python_m_scheduler_stops_cleanly_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path / 'worker.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scheduler"],
        cwd=tmp_path,
        env=_worker_env(tmp_path, DATABASE_URL=url),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "worker" in line and "started" in line:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
