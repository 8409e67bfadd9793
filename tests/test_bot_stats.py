"""End-to-end over HTTP: /stats figures equal the reports service's, and a PNG chart comes."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from db import clock
from db.agency import DEFAULT
from db.models import Role
from db.money import format_money
from db.services import reports
from db.services.access import Actor
from db.services.collection import payments
from tests.bot_harness import BotHarness
from tests.bot_helpers import actor_of, new_loan

pytestmark = pytest.mark.e2e

PNG = b"\x89PNG\r\n\x1a\n"


def _book(h: BotHarness, actor: Actor) -> reports.Portfolio:
    return h.db(reports.portfolio, actor=actor, today=clock.today(h.settings.tz), tz=h.settings.tz)


def _figures(book: reports.Portfolio) -> list[str]:
    """The lines /stats must show for book."""
    return [
        f"Active loans: {book.loans_active}",
        f"Borrowed: {format_money(book.borrowed, DEFAULT)}",
        f"Repaid: {format_money(book.repaid, DEFAULT)}",
        f"Outstanding: {format_money(book.outstanding, DEFAULT)}",
        f"Overdue: {book.overdue_loans} loan(s)",
        *(
            f"{label} days: {n} · {format_money(amount, DEFAULT)}"
            for label, (n, amount) in book.overdue_by_bucket.items()
        ),
        f"Collected today: {format_money(book.collected_today, DEFAULT)}",
        f"Collected this month: {format_money(book.collected_month, DEFAULT)}",
    ]


async def test_stats_figures_and_chart_for_an_agent_and_a_manager(settings, committed):
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT, name="Kiran Agent")
        other = h.make_staff(Role.AGENT, name="Other Agent")
        manager = h.make_staff(Role.MANAGER)
        today = clock.today(h.settings.tz)
        paid = new_loan(h, agent, principal="12000.00")
        new_loan(h, agent, principal="5000.50", first_due=today - timedelta(days=12))
        new_loan(h, other, principal="7000.00")
        h.db(
            payments.record_payment,
            actor=actor_of(agent),
            loan_number=paid.number,
            amount=Decimal("2500.25"),
            today=today,
        )

        text = (await h.say(agent, "/stats"))["text"]
        mine = _book(h, actor_of(agent))
        assert mine.loans_active == 2 and mine.collected_today == Decimal("2500.25")
        assert mine.overdue_by_bucket["1-30"] == (1, Decimal("5000.50"))
        for line in _figures(mine):
            assert line in text, line
        assert "your loans" in text and "Per agent" not in text

        chart = await h.wait(agent, predicate=lambda m: m["kind"] == "photo")
        assert chart["text"] == "Collected per day, last 30 days (INR)"
        assert Path(chart["photo"]).read_bytes().startswith(PNG)
        assert chart["message"]["photo"][0]["width"] > 0

        text = (await h.say(manager, "/stats"))["text"]
        everyone = _book(h, actor_of(manager))
        for line in _figures(everyone):
            assert line in text, line
        kiran = next(a for a in everyone.per_agent if a.agent_id == agent.staff_id)
        assert (
            f"Kiran Agent: 2 · {format_money(kiran.outstanding, DEFAULT)} · 1 overdue · "
            f"{format_money(Decimal('2500.25'), DEFAULT)}"
        ) in text
        assert "Other Agent: 1 · ₹7,000.00 · 0 overdue · ₹0.00" in text
        photo = await h.wait(manager, predicate=lambda m: m["kind"] == "photo")
        assert Path(photo["photo"]).read_bytes().startswith(PNG)


def test_stats_text_stays_short_with_many_agents_and_chart_draws_zeros():
    from bot.handlers.stats import collections_chart, stats_text

    today = clock.utcnow().date()
    lines = tuple(
        reports.AgentLine(
            i, f"Agent <{i}> " + "x" * 60, 3, Decimal("123456.78"), 1, Decimal("999.99")
        )
        for i in range(100)
    )
    book = reports.Portfolio(
        loans_active=300,
        borrowed=Decimal("1"),
        repaid=Decimal("0"),
        outstanding=Decimal("1"),
        overdue_loans=0,
        overdue_by_bucket={},
        collected_today=Decimal("0"),
        collected_month=Decimal("0"),
        per_agent=lines,
    )
    text = stats_text(book, today, True, DEFAULT)
    assert len(text) < 4096 and text.endswith("…and 70 more.")
    assert "Agent &lt;0&gt;" in text  # names are escaped
    zeros = [(today - timedelta(days=i), Decimal("0.00")) for i in range(30)]
    assert collections_chart(zeros, "INR").startswith(PNG)
