"""Secrets never reach a log line: every record is masked when it is made.

Libraries log secrets of their own accord (httpx logs each request's URL, and Telegram's
URLs carry the bot token: .../bot<token>/getUpdates), so masking at our own call sites is
not enough. install() wraps the process's log record factory: every record, from any
logger, has its message (and traceback) rendered and masked before any handler sees it.
Masked: the secrets registered with protect() (bot token, Twilio auth token, webhook
secret, the database password) and, whoever's they are, passwords in URLs and strings
shaped like a Telegram bot token or one of our API keys.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any

MASK = "***"
# scheme://user:password@host -> scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)(?=@)", re.I)
# A Telegram bot token: <bot id>:<35 characters>, alone or in a Bot API URL (.../bot<token>/),
# where no word boundary comes before it.
_BOT_TOKEN = re.compile(r"(?:\b|(?<=/bot))\d{5,15}:[A-Za-z0-9_-]{30,}")
# An API key for the JSON API (db/services/staff/api_keys.py): vsk_ and 43 characters.
_API_KEY = re.compile(r"\bvsk_[A-Za-z0-9_-]{40,}")
# Shorter values are too likely to be ordinary words or numbers to mask everywhere.
_MIN_SECRET = 6

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False


def redact(text: str) -> str:
    """text with every known secret, URL password and bot token replaced by ***."""
    if not text:
        return text
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _API_KEY.sub(MASK, _BOT_TOKEN.sub(MASK, text))


def mask_url(url: str) -> str:
    """url with its password (if any) replaced by ***."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, url)


def add_secrets(values: Iterable[str | None]) -> None:
    """Mask these exact strings in every log line from now on (short ones are ignored)."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET)


def _masked_record(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            record.msg, record.args = redact(record.getMessage()), None
        except Exception:  # a bad format string is logging's problem to report, not ours
            return record
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters print exc_text when it is set, instead of formatting exc_info anew.
            trace = "".join(traceback.format_exception(*record.exc_info))
            record.exc_text = redact(trace.rstrip("\n"))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    # A mark on the function object: a Callable type has no attributes to declare it with.
    make.vasooli_redact = True  # type: ignore[attr-defined]
    return make


def install() -> None:
    """Mask every log record of this process (idempotent)."""
    global _installed
    with _lock:
        if _installed or getattr(logging.getLogRecordFactory(), "vasooli_redact", False):
            _installed = True
            return
        logging.setLogRecordFactory(_masked_record(logging.getLogRecordFactory()))
        _installed = True


def protect(*, database_url: str, secrets: Iterable[str | None]) -> None:
    """Register the process's secrets (the database password among them) and install()."""
    from sqlalchemy.engine import make_url

    try:
        password = make_url(database_url).password
    except Exception:  # an unparsable URL is reported by whoever uses it
        password = None
    add_secrets([*secrets, str(password) if password else None])
    install()
