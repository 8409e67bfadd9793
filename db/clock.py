"""The one clock every service reads, so the demo (and tests) can move time forward."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

_lock = threading.Lock()
_offset = timedelta(0)


def utcnow() -> datetime:
    """Now, timezone-aware UTC, plus the demo's offset (zero in production)."""
    return datetime.now(UTC) + _offset


def today(tz: ZoneInfo) -> date:
    """Today's calendar date in the given zone."""
    return utcnow().astimezone(tz).date()


def day_start(day: date, tz: tzinfo) -> datetime:
    """The UTC instant at which day begins in zone tz (reports and date filters)."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def advance(delta: timedelta) -> timedelta:
    """Move the clock forward (demo only); return the total offset."""
    global _offset
    with _lock:
        _offset += delta
        return _offset


def reset() -> None:
    """Back to real time."""
    global _offset
    with _lock:
        _offset = timedelta(0)
