"""/stats: the portfolio the user may see in figures, and a chart of the last 30 days.

The chart is drawn with matplotlib's object API on the Agg canvas (no pyplot, no global
state), in a worker thread so the event loop keeps serving others meanwhile.
"""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import date
from decimal import Decimal

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from telegram import Update
from telegram.ext import CommandHandler

from bot import texts, views
from bot.context import Context, agency_of, db, reply, require_staff, settings_of
from bot.updates import chat_of
from db import clock
from db.agency import Agency
from db.money import format_money
from db.services import reports
from db.services.access import Actor
from db.services.errors import ServiceError
from db.services.reports import Portfolio

log = logging.getLogger(__name__)

CHART_DAYS = 30
MAX_AGENT_LINES = 30  # keeps the message well under Telegram's 4096 characters


def handler() -> CommandHandler:
    """The /stats command."""
    return CommandHandler("stats", stats)


@require_staff
async def stats(update: Update, context: Context, actor: Actor) -> None:
    """/stats: figures as text, then the collections chart as a photo."""
    settings = settings_of(context)
    today = clock.today(settings.tz)
    try:
        figures = await db(
            context,
            reports.portfolio_figures,
            actor=actor,
            today=today,
            tz=settings.tz,
            days=CHART_DAYS,
        )
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    await reply(update, stats_text(figures.book, today, actor.sees_all_loans, agency_of(context)))
    png = await asyncio.to_thread(collections_chart, figures.days, settings.currency)
    caption = texts.STATS_CHART_CAPTION.format(days=CHART_DAYS, currency=settings.currency)
    await chat_of(update).send_photo(photo=png, caption=caption)


def stats_text(book: Portfolio, today: date, everyone: bool, agency: Agency) -> str:
    """The figures of /stats (per-agent lines when the book is everyone's)."""

    def money(amount: Decimal) -> str:
        return format_money(amount, agency)

    lines = [
        texts.STATS_TITLE.format(
            scope=texts.STATS_SCOPE_ALL if everyone else texts.STATS_SCOPE_MINE,
            date=views.day(today),
        ),
        texts.STATS_BOOK.format(
            loans=book.loans_active,
            borrowed=money(book.borrowed),
            repaid=money(book.repaid),
            outstanding=money(book.outstanding),
        ),
        texts.STATS_OVERDUE.format(loans=book.overdue_loans),
        *(
            texts.STATS_BUCKET.format(bucket=label, loans=n, amount=money(amount))
            for label, (n, amount) in book.overdue_by_bucket.items()
        ),
        texts.STATS_COLLECTED.format(
            today=money(book.collected_today), month=money(book.collected_month)
        ),
    ]
    if book.per_agent:
        lines += ["", texts.STATS_AGENTS]
        lines += [
            texts.stats_agent(
                a.name, a.loans, money(a.outstanding), a.overdue, money(a.collected_month)
            )
            for a in book.per_agent[:MAX_AGENT_LINES]
        ]
        if len(book.per_agent) > MAX_AGENT_LINES:
            lines.append(
                texts.STATS_AGENTS_MORE.format(count=len(book.per_agent) - MAX_AGENT_LINES)
            )
    return "\n".join(lines)


def collections_chart(days: list[tuple[date, Decimal]], currency: str) -> bytes:
    """A PNG bar chart of the money collected on each day."""
    fig = Figure(figsize=(8, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # Floats only to draw: the figures themselves are in the text, as exact Decimals.
    # matplotlib's stubs take numbers only; at run time its date converter places dates.
    ax.bar([d for d, _ in days], [float(a) for _, a in days], color="#2a9d8f")  # type: ignore[arg-type]
    ax.set_title(texts.STATS_CHART_TITLE.format(days=len(days)))
    ax.set_ylabel(currency)
    ax.set_ylim(bottom=0)
    # Whole amounts with separators: matplotlib's default "1e6" offset reads badly.
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:,.0f}"))
    ax.grid(axis="y", alpha=0.3)
    ax.tick_params(axis="x", labelrotation=45)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
