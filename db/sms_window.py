"""The hours a borrower may be texted, in their own time zone: pure functions, no database.

docs/architecture.md: "Borrowers are texted only inside the allowed hours of their own time zone".
The worker's policy, the planner, broadcasts and the one-off reminder all ask here, so they
agree on when the window opens.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=512)
def zone(name: str | None, default: str) -> ZoneInfo:
    """The borrower's zone, or the agency's when unset or unknown."""
    try:
        return ZoneInfo(name) if name else ZoneInfo(default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def window_start(day: date, tz: ZoneInfo, start: time) -> datetime:
    """When the allowed hours open on day in zone tz, as a UTC-comparable datetime."""
    return datetime.combine(day, start, tzinfo=tz)


def next_window(now: datetime, tz: ZoneInfo, window: tuple[time, time]) -> datetime | None:
    """None when now is inside the allowed hours in tz, else when they next open (in tz)."""
    start, end = window
    local = now.astimezone(tz)
    if start <= local.time() < end:
        return None
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return window_start(day, tz, start)


def next_window_open(now: datetime, tz: ZoneInfo, window: tuple[time, time]) -> datetime | None:
    """None when now is inside the allowed hours in tz, else when they next open (UTC)."""
    opens = next_window(now, tz, window)
    return None if opens is None else opens.astimezone(UTC)
