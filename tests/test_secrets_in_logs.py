"""The bot token, the Twilio auth token and database passwords never reach a log line or repr."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from bot.sandbox import TelegramSandbox
from db import redact
from db.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "7012345678:AAFsecretTokenForTheLogTest_0123456789"
DB_PASSWORD = "pg-Pa55word-for-logs"
TWILIO_TOKEN = "twilio-auth-token-0123456789abcdef"
_ENV = (
    "DATABASE_URL",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_API_BASE_URL",
    "TELEGRAM_WEBHOOK_URL",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_ACCOUNT_SID",
    "SMS_BACKEND",
)


def _settings():
    return load_settings(
        database_url=f"postgresql://vasooli:{DB_PASSWORD}@127.0.0.1:1/nowhere",
        telegram_bot_token=TOKEN,
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=TWILIO_TOKEN,
    )


def test_settings_repr_and_str_hide_the_database_password():
    settings = _settings()
    for shown in (repr(settings), str(settings), f"{settings}"):
        assert DB_PASSWORD not in shown and TOKEN not in shown and TWILIO_TOKEN not in shown
        assert "vasooli:***@127.0.0.1" in shown


def test_no_logger_shows_a_secret_not_even_a_librarys(caplog):
    settings = _settings()
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "twilio.http_client"):  # other tests quiet these (cli, bot main)
        caplog.set_level(logging.DEBUG, logger=name)
    # httpx's own line for a Telegram call: the token is part of the URL.
    logging.getLogger("httpx").info(
        'HTTP Request: POST %s "HTTP/1.1 200 OK"', f"https://api.telegram.org/bot{TOKEN}/getMe"
    )
    logging.getLogger("vasooli.test").warning("connecting to %s", settings.database_url)
    logging.getLogger("twilio.http_client").debug("auth %s", TWILIO_TOKEN)
    try:
        raise RuntimeError(f"could not reach postgresql://u:{DB_PASSWORD}@db/x with {TOKEN}")
    except RuntimeError:
        logging.getLogger("vasooli.test").exception("failed")
    text = caplog.text
    assert "bot***/getMe" in text and "vasooli:***@127.0.0.1" in text and "failed" in text
    for secret in (TOKEN, DB_PASSWORD, TWILIO_TOKEN):
        assert secret not in text
        assert all(secret not in r.getMessage() for r in caplog.records)


def test_an_unregistered_bot_token_or_url_password_is_masked_too():
    line = redact.redact(f"GET https://x/bot{TOKEN}/getMe postgresql://a:b0b-secret@h/d")
    assert TOKEN not in line and "b0b-secret" not in line
    assert redact.mask_url("postgresql+psycopg://a@h/d") == "postgresql+psycopg://a@h/d"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV}
    env.update(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'logs.db'}", "PYTHONPATH": str(ROOT), **extra}
    )
    return env


def test_a_verbose_bot_process_logs_no_token(tmp_path):
    """`vasooli --verbose bot` against the sandbox: httpx's request lines, masked."""
    cli = [sys.executable, "-m", "cli", "--verbose"]
    upgrade = subprocess.run(
        [*cli, "db", "upgrade"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    with TelegramSandbox(token=TOKEN) as sandbox:
        env = _env(tmp_path, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=sandbox.base_url)
        proc = subprocess.Popen(
            [*cli, "bot"],
            cwd=tmp_path,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            sandbox.wait_until_polled(timeout=60)
            sandbox.user(4242, "Asha")
            sandbox.send_text(4242, "/help")
            sandbox.wait_for(4242, timeout=30)
        finally:
            proc.send_signal(signal.SIGINT)
            output, _ = proc.communicate(timeout=60)
    assert "bot***/getUpdates" in output, output[-2000:]  # httpx did log the URLs
    assert TOKEN not in output and TOKEN.partition(":")[2] not in output


def test_a_verbose_database_failure_shows_no_password(tmp_path):
    url = f"postgresql://vasooli:{DB_PASSWORD}@127.0.0.1:1/nowhere"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "--verbose", "db", "upgrade"],
        cwd=tmp_path,
        env=_env(tmp_path, DATABASE_URL=url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "127.0.0.1:1" in done.stdout + done.stderr
    assert DB_PASSWORD not in done.stdout + done.stderr
