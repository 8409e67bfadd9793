"""Messages within Telegram's length limit: lists are paged by length as well as by count.

Telegram refuses a text longer than 4,096 characters as it counts them: UTF-16 code units
of the text left after HTML entity parsing (tags do not count, an emoji counts 2). A page
of ten history lines with long notes and names, or a list of long reasons, can pass that;
these helpers measure the way Telegram does and split or shorten before sending.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from telegram import Update

from bot.context import reply
from bot.updates import chat_of

# Telegram's limit for a message's text; a little room is kept for what a caller appends.
LIMIT = 4096
_TAG = re.compile(r"<[^>]*>")


def units(text: str) -> int:
    """UTF-16 code units of plain text (what Telegram counts)."""
    return len(text.encode("utf-16-le")) // 2


def visible_len(html_text: str) -> int:
    """The length Telegram gives an HTML message: its text without tags, entities decoded."""
    return units(html.unescape(_TAG.sub("", html_text)))


def cut(text: str, limit: int) -> str:
    """Plain text shortened to at most limit UTF-16 units, with … when shortened."""
    if units(text) <= limit:
        return text
    out, used = [], 0
    for ch in text:
        size = units(ch)
        if used + size > limit - 1:
            break
        out.append(ch)
        used += size
    return "".join(out) + "…"


def fit(lines: Sequence[str], *, head: str = "", limit: int = LIMIT) -> int:
    """How many of lines (HTML, joined by newlines) fit after head in one message (at least 1)."""
    used = visible_len(head)
    for n, line in enumerate(lines):
        used += visible_len(line) + (1 if used or n else 0)
        if used > limit:
            return max(n, 1)
    return len(lines)


def pages(lines: Sequence[str], *, head: str = "", limit: int = LIMIT) -> list[str]:
    """lines joined into as few messages as fit; head starts the first one.

    Each line must fit on its own (callers cut() long fields): lines are never split.
    """
    out: list[str] = []
    rest = list(lines)
    first = head
    while rest or not out:
        n = fit(rest, head=first, limit=limit) if rest else 0
        out.append("\n".join(([first] if first else []) + rest[:n]))
        rest, first = rest[n:], ""
    return out


async def reply_pages(
    update: Update, lines: Sequence[str], *, head: str = "", limit: int = LIMIT, **kwargs
) -> None:
    """reply() with lines split into messages that fit; kwargs (a keyboard) go on the last."""
    chunks = pages(lines, head=head, limit=limit)
    if len(chunks) == 1:
        await reply(update, chunks[0], **kwargs)
        return
    await reply(update, chunks[0])  # answers a pressed button's query, once
    for n, chunk in enumerate(chunks[1:], 2):
        await chat_of(update).send_message(chunk, **(kwargs if n == len(chunks) else {}))
