"""Fault test (issue 9, "Proof"): 10,000 messages, three worker processes, PostgreSQL.

The local Twilio API answers 429, 500 and timeouts on a share of creates, lists and
fetches (some 500s and timeouts after it accepted the message), keeps messages queued
without a date_sent for a while, and posts status callbacks late, twice and out of order
to the real web app. One worker is paused (SIGSTOP) and resumed, one is SIGKILLed while it
holds claimed messages and is restarted. Afterwards:
- every message is final, or queued with a reason;
- the local API created each sent message exactly once, and never twice for any;
- no message's status ever moved backwards (its message_event history).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db import clock
from db.models import Message, MessageEvent, MessageKind, MessageStatus
from db.services.sms import outbox
from scheduler import web
from scheduler.sandbox import CallbackTiming, CallFaults, TwilioSandbox

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

S = MessageStatus
N = int(os.environ.get("FAULT_MESSAGES", "10000"))  # smaller only while developing
ROOT = Path(__file__).resolve().parent.parent
# Queued at Twilio (no date_sent) up to 2 s; callbacks late, some twice, some swapped.
TIMING = CallbackTiming(
    sent_delay=(0.2, 2.0), final_delay=(0.2, 2.0), duplicate_rate=0.1, out_of_order_rate=0.1
)
FAULTS = CallFaults(
    rate_limited=0.03,
    server_error=0.03,
    timeout=0.01,
    created_share=0.5,
    on=("create", "list", "fetch"),
    retry_after=0.5,
)
CLAIM_SECONDS = 8.0  # the lease: long enough for a 1 s timeout plus its lost-send check
PAUSE_SECONDS = 3.0  # SIGSTOP shorter than the lease (see db.services.sms.claims on longer ones)
SETTLE_TIMEOUT = 360.0  # about 2-4 minutes on a shared 2-core machine
# Statuses in the order a message may move through them; QUEUED again after SENDING is a
# sanctioned retry or deferral, anything lower after SENT is a step back.
RANK = {
    S.QUEUED: 0,
    S.SENDING: 1,
    S.SENT: 2,
    S.DELIVERED: 3,
    S.UNDELIVERED: 3,
    S.FAILED: 3,
    S.CANCELED: 3,
    S.SUPPRESSED: 3,
}
OPEN = (S.QUEUED, S.SENDING, S.SENT)
PR_SET_PDEATHSIG = 1


def _phones() -> list[str]:
    return [f"+9196{i:08d}" for i in range(N)]


def _bulk_queue(factory: sessionmaker[Session]) -> None:
    """10,000 replies (no quiet hours or cap apply), queued like outbox.queue_message does."""
    now = clock.utcnow()
    rows = [
        dict(
            to_phone=p,
            body=f"Your balance, ref {i}",
            kind=MessageKind.REPLY,
            idempotency_key=f"fault:{i}",
            status=S.QUEUED,
            attempts=0,
            send_after=now - timedelta(seconds=1),
            created_at=now,
            updated_at=now,
        )
        for i, p in enumerate(_phones())
    ]
    with factory.begin() as s:
        s.execute(Message.__table__.insert(), rows)
        ids = list(s.scalars(select(Message.id)))
        outbox.record_events(s, ids, S.QUEUED, outbox.EventSource.OUTBOX, "fault test")


def _count(factory: sessionmaker[Session], *where) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).select_from(Message).where(*where)) or 0


def _statuses(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as s:
        return {
            str(st): n
            for st, n in s.execute(select(Message.status, func.count()).group_by(Message.status))
        }


def _wait(
    condition: Callable[[], bool],
    what: str,
    procs: list[subprocess.Popen],
    factory: sessionmaker[Session],
    timeout: float = SETTLE_TIMEOUT,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"a worker exited while waiting for {what}: {dead}"
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what}; messages by status: {_statuses(factory)}"
        )
        time.sleep(0.2)


def _worker_env(database_url: str, sb: TwilioSandbox, public_url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "SMS_", "DATABASE_", "PUBLIC_"))
    }
    env.update(
        DATABASE_URL=database_url,
        SMS_BACKEND="twilio",
        TWILIO_ACCOUNT_SID=sb.account_sid,
        TWILIO_AUTH_TOKEN=sb.auth_token,
        TWILIO_FROM_NUMBER=sb.phone_number,
        TWILIO_API_BASE_URL=sb.base_url,
        PUBLIC_BASE_URL=public_url,
        SMS_RATE_PER_SECOND="1000",
        SMS_BATCH_SIZE="100",
        SMS_MAX_ATTEMPTS="15",
        SMS_RETRY_BASE_SECONDS="0.3",
        SMS_CLAIM_SECONDS=str(CLAIM_SECONDS),
        RECONCILE_AFTER_HOURS="0.003",
        DISPATCH_INTERVAL_SECONDS="0.3",
        FAULT_TWILIO_TIMEOUT="1.0",
        FAULT_RECONCILE_SECONDS="1.0",
    )
    return env


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process dies, however it dies (Linux)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Workers:
    """The worker processes; every one is stopped, whatever happens (no leaked process)."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: list[subprocess.Popen] = []

    def start(
        self, args: list[str] | None = None, name: str = "worker", **env: str
    ) -> subprocess.Popen:
        log = open(self.logs / f"{name}{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, *(args or ["-m", "tests.fault_worker"])],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()  # the child holds its own descriptor
        self.procs.append(proc)
        return proc

    def live(self) -> list[subprocess.Popen]:
        return [p for p in self.procs if p.returncode is None]

    def worker_id(self, proc: subprocess.Popen) -> str:
        return f"{socket.gethostname()}:{proc.pid}"[:64]

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


@pytest.fixture
def postgres(database_url: str) -> str:
    if database_url.startswith("sqlite"):
        pytest.skip(
            "fault test needs PostgreSQL (set TEST_DATABASE_URL): SQLite has one "
            "writer at a time, so concurrent worker processes are not a SQLite setup"
        )
    return database_url


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + web.HEALTH_PATH, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def sandbox(postgres: str) -> Iterator[TwilioSandbox]:
    with TwilioSandbox(seed=9, hang_seconds=2.0, callback_timing=TIMING) as sb:
        yield sb


def test_ten_thousand_messages_through_faults_pauses_and_a_kill(
    postgres, committed, sandbox, tmp_path
):
    sb = sandbox
    public_url = f"http://127.0.0.1:{_free_port()}"
    _bulk_queue(committed)
    env = _worker_env(postgres, sb, public_url)
    # The real web app in its own process (status callbacks), as in production.
    workers = Workers(env, tmp_path)
    try:
        workers.start(["-m", "tests.fault_worker", "web"], "web", PORT=public_url.rsplit(":", 1)[1])
        _wait(lambda: _healthy(public_url), "the web app", workers.live(), committed, timeout=30)
        sb.call_faults = FAULTS
        procs = [workers.start() for _ in range(3)]
        _wait(
            lambda: _count(committed, Message.status != S.QUEUED) > N // 5,
            "progress",
            procs,
            committed,
        )
        paused = procs[0]
        paused.send_signal(signal.SIGSTOP)
        time.sleep(PAUSE_SECONDS)
        paused.send_signal(signal.SIGCONT)
        victim, victim_id = procs[1], workers.worker_id(procs[1])
        # Mid-batch: killed while it holds claimed, unsettled messages.
        _wait(
            lambda: (
                _count(committed, Message.status == S.SENDING, Message.claimed_by == victim_id) > 0
            ),
            "a claimed batch",
            procs,
            committed,
        )
        victim.kill()
        victim.wait(timeout=10)
        workers.start()
        _wait(
            lambda: _count(committed, Message.status.in_(OPEN)) == 0,
            "every message settled",
            workers.live(),
            committed,
        )
    finally:
        sb.call_faults = None
        workers.stop_all()
    _assert_outcome(committed, sb)


def _assert_outcome(factory: sessionmaker[Session], sb: TwilioSandbox) -> None:
    created = Counter(m.to for m in sb.messages)
    remote_sid = {m.to: m.sid for m in sb.messages}
    with factory() as s:
        rows = s.execute(
            select(
                Message.id,
                Message.to_phone,
                Message.status,
                Message.provider_sid,
                Message.error_message,
            )
        ).all()
        history: dict[int, list[tuple[str, str | None]]] = {}
        for mid, status, detail in s.execute(
            select(MessageEvent.message_id, MessageEvent.status, MessageEvent.detail).order_by(
                MessageEvent.id
            )
        ):
            history.setdefault(mid, []).append((status, detail))
    assert len(rows) == N
    twice = {phone for phone, n in created.items() if n > 1}
    assert not twice, (
        "sent twice",
        [(mid, history[mid]) for mid, phone, *_ in rows if phone in twice],
    )
    for mid, phone, status, sid, reason in rows:
        assert status not in (S.SENDING, S.SENT), (mid, status)
        assert status is not S.QUEUED or reason, (mid, "queued without a reason")
        if sid is not None:
            assert created[phone] == 1 and remote_sid[phone] == sid, (mid, sid)
        _assert_forward_only(mid, status, history[mid])
    delivered = sum(1 for r in rows if r.status is S.DELIVERED)
    assert delivered > N * 0.95  # the faults are transient: nearly all get through


def _assert_forward_only(mid: int, final: MessageStatus, events: list[tuple[str, str | None]]):
    """Applied events only ("ignored: ..." reports change nothing): never a step back."""
    applied = [S(st) for st, detail in events if not (detail or "").startswith("ignored")]
    for before, after in pairwise(applied):
        if RANK[before] >= RANK[S.SENT]:  # before that, back to QUEUED is a sanctioned retry
            assert RANK[after] > RANK[before], (mid, applied)
    assert applied[-1] is final, (mid, applied)
