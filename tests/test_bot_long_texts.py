"""Long names and notes (emoji, Devanagari, HTML characters) never make a message too long.

Telegram refuses a text above 4,096 UTF-16 units (the sandbox does too), which the user
saw as "Something went wrong": lists are paged by length as well as by count.
"""

from __future__ import annotations

import pytest

from bot import texts
from bot.paging import LIMIT, cut, fit, pages, units, visible_len
from db.models import ContactChannel, ContactOutcome, Role
from db.services.collection import promises
from db.services.staff import members as staff_service
from tests.bot_harness import BotHarness
from tests.bot_helpers import actor_of, new_loan, until

# 2 UTF-16 units per emoji; Devanagari is 1 per code point but many code points per letter.
LONG_NAME = ("राजेश <Kumar> & " + "😀" * 110)[:120]
LONG_NOTE = ("वादा किया 🙏 <b>pay</b> & " * 60)[:1000].strip()
BUSY = {"bot_commands_per_minute": 500}


def _older(message: dict) -> dict | None:
    return next((b for b in message["buttons"] if b["text"] == "Older »"), None)


@pytest.mark.e2e
async def test_a_history_of_long_notes_pages_by_length_and_loses_nothing(settings, committed):
    async with BotHarness(settings, committed, **BUSY) as h:
        agent = h.make_staff(Role.AGENT, name=LONG_NAME)
        loan = new_loan(h, agent)
        for _ in range(12):
            h.db(
                promises.record_contact,
                actor=actor_of(agent),
                loan_number=loan.number,
                channel=ContactChannel.CALL,
                outcome=ContactOutcome.NO_ANSWER,
                note=LONG_NOTE,
            )
        page = await h.say(agent, f"/history {loan.number}", contains="History of")
        seen, number = [], 1
        while True:
            assert units(page["text"]) <= LIMIT and f"page {number}," in page["text"]
            seen += page["text"].splitlines()[1:]
            older = _older(page)
            if older is None:
                break
            await h.press(agent, page, older["callback_data"])
            number += 1
            page = await h.wait(
                agent,
                predicate=lambda m, mid=page["message_id"], n=number: (
                    m["message_id"] == mid and f"page {n}," in m["text"]
                ),
            )
        calls = [line for line in seen if "Call: no answer" in line]
        assert len(calls) == 12, "every contact shown once, none lost between pages"
        assert "<b>pay</b>" in calls[0] and "😀" in calls[0]  # escaped, shown as typed


@pytest.mark.e2e
async def test_an_audit_of_long_names_is_split_into_messages_that_fit(settings, committed):
    async with BotHarness(settings, committed, **BUSY) as h:
        admin = h.make_staff(Role.ADMIN, name=LONG_NAME)
        for _ in range(25):
            h.db(staff_service.create_invite, actor=actor_of(admin), role=Role.AGENT)
        first = await h.say(admin, "/audit", contains="invite")

        def shown() -> list[dict]:
            return [
                m for m in h.sandbox.sent(admin.user_id) if m["message_id"] >= first["message_id"]
            ]

        def lines() -> list[str]:
            return [line for m in shown() for line in m["text"].splitlines()]

        await until(lambda: sum("invite created" in line for line in lines()) >= 20)
        await h.silence(admin)
        assert len(shown()) >= 2 and all(units(m["text"]) <= LIMIT for m in shown())
        assert sum("invite created" in line for line in lines()) == 20  # AUDIT_LIMIT, all shown
        assert texts.ERROR not in lines()


def test_the_helpers_count_as_telegram_does():
    assert visible_len("<b>a &amp; b</b>") == 5
    assert visible_len("😀") == 2 and units("राजेश") == 5
    assert units(cut("😀" * 10, 7)) <= 7 and cut("short", 10) == "short"
    lines = ["<i>x</i> " + "😀" * 500] * 10  # 1002 units each
    assert fit(lines, head="head") == 4
    chunks = pages(lines, head="head")
    assert len(chunks) == 3 and all(visible_len(c) <= LIMIT for c in chunks)
    assert sum(c.count("<i>x</i>") for c in chunks) == 10
