"""`vasooli demo` as a real process: the guided tour as a script, and Ctrl-C on the chat.

Everything runs locally (sandbox Telegram and Twilio inside the demo process), so these
tests need no network; they use their own SQLite file whatever TEST_DATABASE_URL says.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from bot.app import build_application
from bot.sandbox import TelegramSandbox
from bot.serve import SECRET_HEADER, webhook_route
from bot.terminal.input import parse_clock, plain, split_sms
from db.config import Settings
from db.models import MessageKind
from db.services.sms import outbox
from db.session import make_session_factory
from scheduler.sandbox import TwilioSandbox
from scheduler.sandbox.demo_world import FEED_LINES, SmsFeed, mask
from scheduler.serve import listen_socket

ROOT = Path(__file__).resolve().parents[1]
TOUR = ROOT / "examples" / "tour.txt"
STRAY_THREADS = "threads still running"


# What each step of examples/tour.txt must show in the transcript.
TOUR_STEPS = {
    "the admin's invite code": r"start=[A-Za-z0-9_-]{8,}",
    "the new agent redeemed it": r"Welcome, Ravi Kumar! You are logged in as agent",
    "the loan was created": r"Loan LN-20001 added",
    "/find found it": r"LN-20001 · ₹25,000\.00 · Sunita Devi",
    "the payment, with the new balance": r"Payment of ₹2,500\.00 recorded\. Balance ₹22,500\.00",
    "the promise": r"Promise recorded: ₹5,000\.00",
    "the payment notice SMS": r"SMS \+91 98•••••210\s+notice\s+.*sent",
    "the BAL reply SMS": r"SMS \+91 98•••••210\s+reply\s+.*(sent|delivered)",
    "the reply relayed to the agent": r"Vasooli › 💬 Sunita Devi \(LN-20001\): I will pay the rest",
    "the clock moved": r"The clock is now .*reminders queued",
    "the broadcast was queued": r"Broadcast #\d+ · \w+.*\n.*overdue loan · \d+ message",
    "the delivery report": r"Deliveries\s+Last 24 hours: \d+ message(.|\n)*?Delivery rate: \d",
    "the broadcast in the report": r"broadcast: delivered \d+",
}


def _env() -> dict[str, str]:
    """This environment without Vasooli settings (the demo chooses its own)."""
    fields = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in fields}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _demo(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", "demo", *args]


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.e2e
def test_the_tour_shows_every_step(tmp_path):
    db = tmp_path / "tour.db"
    done = subprocess.run(
        _demo("--fresh", "--script", str(TOUR), "--db", str(db)),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in out + done.stderr
    missing = [step for step, pattern in TOUR_STEPS.items() if not re.search(pattern, out)]
    assert not missing, f"the transcript lacks {missing}:\n{out[-6000:]}"
    assert out.rstrip().endswith("Demo stopped.")
    assert _integrity(db) == "ok"
    with sqlite3.connect(db) as conn:
        paid = conn.execute(
            "SELECT sum(p.amount) FROM payment p JOIN loan l ON l.id = p.loan_id "
            "WHERE l.loan_number = 'LN-20001'"
        ).fetchone()[0]
    assert str(paid).startswith("2500")
    assert STRAY_THREADS not in db.with_suffix(".log").read_text()


def _read_until(proc: subprocess.Popen, marker: str, timeout: float) -> str:
    """stdout until marker shows (or timeout), without blocking past the deadline."""
    assert proc.stdout is not None
    seen, deadline = b"", time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while marker.encode() not in seen and time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk
    return seen.decode("utf-8", "replace")


@pytest.mark.e2e
def test_ctrl_c_stops_the_interactive_demo_cleanly(tmp_path):
    db = tmp_path / "chat.db"
    proc = subprocess.Popen(
        _demo("--fresh", "--db", str(db)),
        cwd=tmp_path,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        banner = _read_until(proc, "Ctrl-C stops", timeout=60)
        assert "Ctrl-C stops" in banner, banner
        assert proc.stdin is not None
        proc.stdin.write(b"/help\n")
        proc.stdin.flush()
        answer = _read_until(proc, "What you can do", timeout=20)
        assert "What you can do (agent)" in answer
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)  # a guard against hanging, not a benchmark
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = out.decode("utf-8", "replace") + err.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-3000:]
    assert "Demo stopped." in text and "Traceback" not in text
    assert _integrity(db) == "ok"
    assert STRAY_THREADS not in db.with_suffix(".log").read_text()


def _upgrade_and_start(cwd, env: dict[str, str], command: str) -> subprocess.Popen:
    """`vasooli db upgrade`, then `vasooli <command>` in the background."""
    cli = [sys.executable, "-m", "cli"]
    upgrade = subprocess.run(
        [*cli, "db", "upgrade"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    return subprocess.Popen(
        [*cli, command],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.e2e
def test_run_serves_bot_worker_and_web_until_sigterm(tmp_path):
    with listen_socket("127.0.0.1", 0) as probe:  # a free port for the web app
        port = probe.getsockname()[1]
    with TelegramSandbox() as telegram, TwilioSandbox() as twilio:
        env = _env() | {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'run.db'}",
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_BASE_URL": telegram.base_url,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_AUTH_TOKEN": twilio.auth_token,
            "TWILIO_FROM_NUMBER": twilio.phone_number,
            "TWILIO_API_BASE_URL": twilio.base_url,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "PORT": str(port),
        }
        proc = _upgrade_and_start(tmp_path, env, "run")
        try:
            telegram.user(4242, "Stranger")
            telegram.send_text(4242, "/help")
            answer = telegram.wait_for(4242, timeout=30)
            assert "invite" in answer["text"].lower()
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            assert health.json() == {"ok": True, "db": "ok"}
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)  # a guard against hanging
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    log = err.decode("utf-8", "replace")
    assert proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log and "stopped" in log


async def test_the_telegram_webhook_route_takes_only_updates_with_the_secret(settings, engine):
    webhook = settings.model_copy(
        update={
            "telegram_bot_token": SecretStr("123:ABC"),
            "telegram_webhook_url": "https://x.org/tg/in",
            "telegram_webhook_secret": SecretStr("s3cret_token"),
        }
    )
    app = build_application(webhook, make_session_factory(engine))
    web = Starlette(routes=[webhook_route(app, webhook)])
    update = {
        "update_id": 7,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 5, "type": "private"},
            "text": "/help",
            "from": {"id": 5, "is_bot": False, "first_name": "Asha"},
        },
    }
    good = {SECRET_HEADER: "s3cret_token"}
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
        assert (await client.post("/tg/in", json=update)).status_code == 403
        wrong = {SECRET_HEADER: "s3cret"}
        assert (await client.post("/tg/in", json=update, headers=wrong)).status_code == 403
        assert (await client.post("/tg/in", content=b"{", headers=good)).status_code == 400
        assert (await client.post("/tg/in", content=b"[]", headers=good)).status_code == 400
        assert app.update_queue.empty()
        assert (await client.post("/tg/in", json=update, headers=good)).status_code == 200
    queued = app.update_queue.get_nowait()
    assert queued.update_id == 7 and queued.message.text == "/help"


def test_phones_are_masked_and_typed_input_is_parsed():
    assert mask("+919876543210") == "+91 98•••••210"
    assert mask("+447700900123") == "+44 77•••••123"
    assert split_sms("98765 43210 I will pay 500 on Friday") == (
        "9876543210",
        "I will pay 500 on Friday",
    )
    assert split_sms("+91 98765 43210 BAL") == ("+919876543210", "BAL")
    assert parse_clock("+2d") == timedelta(days=2) and parse_clock("+6h") == timedelta(hours=6)
    assert parse_clock("-2d") is None and parse_clock("+0d") is None and parse_clock("2") is None
    assert plain("✅ Send to 125").startswith(plain("Send")) and plain("💰 Pay") == "pay"


def _queue(factory, phone: str, kind: MessageKind = MessageKind.NOTICE) -> int:
    with factory.begin() as session:
        info = outbox.queue_message(
            session, to=phone, body="Hello", kind=kind, idempotency_key=f"demo-test-{uuid.uuid4()}"
        )
        return info.id


def _events(factory, message_id: int, *steps: tuple[str, str | None]) -> None:
    with factory.begin() as session:
        for status, detail in steps:
            outbox.event(session, message_id, status, "test", detail)


def test_the_sms_feed_shows_each_change_once_and_sums_up_bursts(committed):
    feed = SmsFeed(committed, ZoneInfo("Asia/Kolkata"))
    feed.skip_history()
    phone = f"+9198{uuid.uuid4().int % 10**8:08d}"
    message_id = _queue(committed, phone)
    mine = [(line, style) for line, style in feed.poll() if mask(phone) in line]
    assert len(mine) == 1 and mine[0][0].endswith("notice    queued") and mine[0][1] == "queued"
    _events(
        committed,
        message_id,
        ("sending", None),
        ("sent", None),
        ("queued", "ignored: message is sent"),
        ("delivered", None),
    )
    mine = [(line, style) for line, style in feed.poll() if mask(phone) in line]
    assert len(mine) == 1 and mine[0][1] == "delivered"
    assert mine[0][0].endswith("notice    sent → delivered")  # "sending" and the ignored
    # report are not changes worth a line
    _events(committed, message_id, ("sent", None))  # a late report after the end: no news
    assert not [line for line, _ in feed.poll() if mask(phone) in line]
    for _ in range(FEED_LINES + 3):
        _queue(committed, f"+9197{uuid.uuid4().int % 10**8:08d}", MessageKind.BROADCAST)
    lines = feed.poll()
    assert sum("broadcast" in line for line, _ in lines) <= FEED_LINES
    summary = [line for line, style in lines if style == "summary"]
    assert len(summary) == 1 and re.search(r"… and \d+ more: \d+ queued", summary[0])


@pytest.mark.e2e
def test_web_in_webhook_mode_serves_telegram_and_twilio_on_one_port(tmp_path):
    with listen_socket("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    with TelegramSandbox() as telegram:
        env = _env() | {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_API_BASE_URL": telegram.base_url,
            "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}/telegram/update",
            "TELEGRAM_WEBHOOK_SECRET": "a-webhook-secret-1",
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "twilio-token",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "PORT": str(port),
        }
        proc = _upgrade_and_start(tmp_path, env, "web")
        try:
            telegram.user(4343, "Stranger")
            deadline = time.monotonic() + 30
            while not telegram.calls("setWebhook") and time.monotonic() < deadline:
                time.sleep(0.1)
            telegram.send_text(4343, "/help")  # delivered by POST to the web app, not polled
            answer = telegram.wait_for(4343, timeout=30)
            assert "invite" in answer["text"].lower()
            assert not telegram.calls("getUpdates")
            unsigned = httpx.post(
                f"http://127.0.0.1:{port}/twilio/status",
                data={"MessageSid": "SM1", "MessageStatus": "sent"},
                timeout=10,
            )
            assert unsigned.status_code == 403
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    log = err.decode("utf-8", "replace")
    assert proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log
