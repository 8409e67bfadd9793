"""The allowed SMS hours in a borrower's zone (db.sms_window), tested directly."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from db.services.broadcasts import compose as broadcasts
from db.services.sms import reminders
from db.sms_window import next_window, next_window_open, window_start, zone
from scheduler import policy

WINDOW = (time(8), time(19))
KOLKATA = ZoneInfo("Asia/Kolkata")
# Zones with and without daylight saving, whole and half hours off UTC.
ZONES = ["Asia/Kolkata", "America/New_York", "Europe/London", "Australia/Adelaide", "UTC"]


def test_zone_falls_back_to_the_default_when_unset_or_unknown():
    assert zone("America/New_York", "Asia/Kolkata") == ZoneInfo("America/New_York")
    assert zone(None, "Asia/Kolkata") == KOLKATA
    assert zone("", "Asia/Kolkata") == KOLKATA
    assert zone("Mars/Olympus", "Asia/Kolkata") == KOLKATA
    assert zone("../etc/passwd", "Asia/Kolkata") == KOLKATA


def test_window_start_is_the_local_opening_time_of_that_day():
    opens = window_start(date(2030, 1, 15), KOLKATA, time(8))
    assert opens == datetime(2030, 1, 15, 2, 30, tzinfo=UTC)
    assert opens.astimezone(KOLKATA).time() == time(8)


def test_next_window_inside_before_and_after_the_hours():
    inside = datetime(2030, 1, 15, 6, 0, tzinfo=UTC)  # 11:30 in Kolkata
    early = datetime(2030, 1, 15, 1, 0, tzinfo=UTC)  # 06:30 in Kolkata
    night = datetime(2030, 1, 15, 14, 0, tzinfo=UTC)  # 19:30 in Kolkata: the end is excluded
    assert next_window(inside, KOLKATA, WINDOW) is None
    assert next_window(early, KOLKATA, WINDOW) == datetime(2030, 1, 15, 2, 30, tzinfo=UTC)
    assert next_window(night, KOLKATA, WINDOW) == datetime(2030, 1, 16, 2, 30, tzinfo=UTC)


def test_next_window_open_is_the_same_moment_in_utc():
    night = datetime(2030, 1, 15, 14, 0, tzinfo=UTC)
    opens = next_window_open(night, KOLKATA, WINDOW)
    assert opens == next_window(night, KOLKATA, WINDOW)
    assert opens is not None and opens.tzinfo is UTC


def test_the_old_homes_still_offer_the_same_functions():
    assert policy.zone is reminders.zone is broadcasts.zone is zone
    assert policy.next_window is next_window and policy.window_start is window_start
    assert reminders.next_window_open is broadcasts.next_window_open is next_window_open


@given(
    now=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    name=st.sampled_from(ZONES),
)
def test_next_window_open_is_none_inside_else_the_next_local_opening(now, name):
    tz = ZoneInfo(name)
    local = now.astimezone(tz)
    opens = next_window_open(now, tz, WINDOW)
    if WINDOW[0] <= local.time() < WINDOW[1]:
        assert opens is None
        return
    assert opens is not None and now < opens <= now + timedelta(hours=14)  # 19:00 to 08:00, +1h DST
    assert opens.astimezone(tz).time() == WINDOW[0]
    # Nothing opens in between: a minute before, the answer is the same opening.
    assert next_window_open(opens - timedelta(minutes=1), tz, WINDOW) == opens
