"""What the demo's person types: read without a thread (the loop watches stdin), and parsed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

_CLOCK = re.compile(r"^\+(\d{1,4})([dhw])$")
_UNITS = {"d": "days", "h": "hours", "w": "weeks"}
_PHONE_PART = re.compile(r"[+0-9()\-.]+")


async def unless_stopped(work: Awaitable[bool], stop: asyncio.Event) -> bool:
    """work's result, or False as soon as stop is set (work is then cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, stopping):
        pending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        return await task
    return False


async def stdin_lines(stop: asyncio.Event) -> AsyncIterator[str]:
    """Lines from stdin until EOF or stop."""
    loop, queue = asyncio.get_running_loop(), asyncio.Queue[bytes]()
    fd = sys.stdin.fileno()
    loop.add_reader(fd, lambda: queue.put_nowait(os.read(fd, 4096)))
    stopping = asyncio.ensure_future(stop.wait())
    buffer = b""
    try:
        while True:
            reading = asyncio.ensure_future(queue.get())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                return
            chunk = reading.result()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")
            if not chunk:  # end of input
                if buffer:
                    yield buffer.decode("utf-8", "replace")
                return
    finally:
        loop.remove_reader(fd)
        stopping.cancel()


def plain(label: str) -> str:
    """'✅ Confirm' -> 'confirm': a button's label as a person types it."""
    return " ".join("".join(c for c in label if c.isalnum() or c.isspace()).split()).casefold()


def seconds(text: str, default: float) -> float:
    """A :wait argument: seconds from 0 to 600, or the default when missing or malformed."""
    try:
        return min(600.0, max(0.0, float(text))) if text else default
    except ValueError:
        return default


def parse_clock(text: str) -> timedelta | None:
    """'+2d' -> two days forward (h, d, w); None for anything else, or for +0."""
    found = _CLOCK.match(text.replace(" ", ""))
    if not found or int(found.group(1)) == 0:
        return None
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def split_sms(text: str) -> tuple[str, str]:
    """'98765 43210 BAL' -> ('9876543210', 'BAL'): a phone may be typed in groups of digits."""
    parts = text.split()
    while (
        len(parts) > 1
        and _PHONE_PART.fullmatch(parts[1])
        and sum(c.isdigit() for c in parts[0]) < 10
    ):
        parts[:2] = [parts[0] + parts[1]]
    return (parts[0], " ".join(parts[1:])) if parts else ("", "")
