"""/export: loans, the overdue list, payments or SMS deliveries as a CSV or XLSX document.

The menu is three steps of buttons (kind, period when the kind has one, format); each
button carries every choice so far, so no state is kept between presses. Other dates are
typed as arguments (/export payments 2026-11-01 2026-11-30). The service writes the file in
a worker thread into a temporary folder; the bot edits one message to show the rows written
so far, then sends the file as a document, and the folder is removed.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot import keyboards, texts
from bot.context import Context, agency_of, answer_button, db, reply, require_staff, settings_of
from bot.keyboards import CB
from bot.updates import chat_of, query_of
from db import clock
from db.services.access import Actor
from db.services.errors import InvalidInput, ServiceError
from db.services.exports.kinds import ExportFormat, ExportKind, Period
from db.services.exports.run import require_exporter, write_export

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 50 * 1024 * 1024  # the most a bot may upload to Telegram
NO_PERIOD = "-"
TYPE_DATES = "type"
_KINDS = {k.value for k in ExportKind}
_FORMATS = {f.value for f in ExportFormat}


def handlers() -> list:
    return [
        CommandHandler("export", export_command),
        CallbackQueryHandler(kind_button, pattern=keyboards.pattern(CB.EXPORT_KIND)),
        CallbackQueryHandler(period_button, pattern=keyboards.pattern(CB.EXPORT_PERIOD)),
        CallbackQueryHandler(run_button, pattern=keyboards.pattern(CB.EXPORT_RUN)),
    ]


# --- periods as button tokens ------------------------------------------------------------


def parse_day(text: str) -> date:
    """An ISO date typed by the user (2026-11-30), or InvalidInput."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(texts.EXPORT_BAD_DATE.format(text=text[:20]), code="date") from None


def token_of(period: Period) -> str:
    return f"{period.first:%Y%m%d}_{period.last:%Y%m%d}"


def period_of(token: str, today: date) -> Period | None:
    """The period a token names: none, this or last month, or first_last (YYYYMMDD)."""
    if token == NO_PERIOD:
        return None
    if token == "this":
        return Period.month_of(today)
    if token == "last":
        return Period.last_month(today)
    first, _, last = token.partition("_")
    iso = [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in (first, last)]
    return Period(parse_day(iso[0]), parse_day(iso[1]))


# --- the menu ----------------------------------------------------------------------------


async def _ask_format(update: Update, kind: ExportKind, token: str, today: date) -> None:
    period = period_of(token, today)
    label = None if period is None else f"{period.first} – {period.last}"
    markup = keyboards.export_formats(kind.value, token, list(texts.EXPORT_FORMATS.items()))
    await _show(update, texts.export_choose_format(kind.value, label), markup)


async def _ask_period(update: Update, kind: ExportKind) -> None:
    markup = keyboards.export_periods(kind.value, list(texts.EXPORT_PERIODS.items()))
    await _show(update, texts.EXPORT_CHOOSE_PERIOD, markup)


async def _show(update: Update, text: str, markup=None) -> None:
    """Edit the menu message on a button press; answer the command otherwise."""
    if update.callback_query is not None:
        await update.callback_query.answer()
        await update.callback_query.edit_message_text(text, reply_markup=markup)
    else:
        await reply(update, text, reply_markup=markup)


def _command_choice(args: list[str]) -> tuple[ExportKind, str | None]:
    """(kind, period token or None to ask) from /export's arguments; ValueError if unfit."""
    kind = ExportKind(args[0].lower())
    if len(args) == 3 and kind.has_period:
        return kind, token_of(Period(parse_day(args[1]), parse_day(args[2])))
    if len(args) != 1:
        raise ValueError(args)
    return kind, (None if kind.has_period else NO_PERIOD)


@require_staff
async def export_command(update: Update, context: Context, actor: Actor) -> None:
    """/export: the menu; /export <kind> [first last]: on to the next step."""
    args = context.args or []
    try:
        require_exporter(actor)
        if not args:
            kinds = keyboards.export_kinds(list(texts.EXPORT_KINDS.items()))
            await reply(update, texts.EXPORT_CHOOSE, reply_markup=kinds)
            return
        kind, token = _command_choice(args)
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    except ValueError:
        await reply(update, texts.EXPORT_USAGE)
        return
    if token is None:
        await _ask_period(update, kind)
    else:
        await _ask_format(update, kind, token, clock.today(settings_of(context).tz))


def _fields(update: Update, prefix: CB, count: int) -> list[str] | None:
    return keyboards.parse_fields(query_of(update).data, prefix, count)


@require_staff
async def kind_button(update: Update, context: Context, actor: Actor) -> None:
    parts = _fields(update, CB.EXPORT_KIND, 1)
    if parts is None or parts[0] not in _KINDS:
        await answer_button(update, texts.BAD_BUTTON)
        return
    kind = ExportKind(parts[0])
    if kind.has_period:
        await _ask_period(update, kind)
    else:
        await _ask_format(update, kind, NO_PERIOD, clock.today(settings_of(context).tz))


@require_staff
async def period_button(update: Update, context: Context, actor: Actor) -> None:
    parts = _fields(update, CB.EXPORT_PERIOD, 2)
    if parts is None or parts[0] not in _KINDS or parts[1] not in texts.EXPORT_PERIODS:
        await answer_button(update, texts.BAD_BUTTON)
        return
    if parts[1] == TYPE_DATES:
        await _show(update, texts.EXPORT_TYPE_DATES.format(kind=parts[0]))
        return
    await _ask_format(update, ExportKind(parts[0]), parts[1], clock.today(settings_of(context).tz))


# --- making the file ---------------------------------------------------------------------


@require_staff
async def run_button(update: Update, context: Context, actor: Actor) -> None:
    parts = _fields(update, CB.EXPORT_RUN, 3)
    today = clock.today(settings_of(context).tz)
    try:
        if parts is None or parts[0] not in _KINDS or parts[2] not in _FORMATS:
            raise ValueError(parts)
        kind, fmt, period = ExportKind(parts[0]), ExportFormat(parts[2]), period_of(parts[1], today)
    except (ValueError, ServiceError):
        await answer_button(update, texts.BAD_BUTTON)
        return
    await query_of(update).answer()
    await query_of(update).edit_message_reply_markup(None)
    note = await chat_of(update).send_message(texts.export_progress(kind.value, 0))
    edits: list = []
    with tempfile.TemporaryDirectory(prefix="vasooli-export-") as folder:
        path = Path(folder) / f"export.{fmt.value}"
        try:
            made = await db(
                context,
                write_export,
                actor=actor,
                kind=kind,
                fmt=fmt,
                path=path,
                agency=agency_of(context),
                today=today,
                period=period,
                progress=_progress(note, kind, edits),
                every=settings_of(context).export_progress_rows,
            )
        except ServiceError as err:
            await note.edit_text(texts.service_error(err))
            return
        finally:  # every progress edit lands before the last word
            await asyncio.gather(*(asyncio.wrap_future(f) for f in edits))
        await _send(update, note, path, made)


def _progress(note: Message, kind: ExportKind, edits: list) -> Callable[[int], None]:
    """A callback for the worker thread: edit the progress message on the bot's loop."""
    loop = asyncio.get_running_loop()

    async def edit(rows: int) -> None:
        try:
            await note.edit_text(texts.export_progress(kind.value, rows))
        except TelegramError as exc:  # progress is a courtesy: the export goes on
            log.info("could not show export progress: %s", exc)

    def progress(rows: int) -> None:
        edits.append(asyncio.run_coroutine_threadsafe(edit(rows), loop))

    return progress


async def _send(update: Update, note: Message, path: Path, made) -> None:
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        await note.edit_text(texts.EXPORT_TOO_BIG.format(size=size // (1024 * 1024)))
        return
    with path.open("rb") as data:
        await chat_of(update).send_document(
            document=data,
            filename=made.filename,
            caption=texts.export_done(made.kind.value, made.rows),
        )
    try:
        await note.edit_text(texts.export_done(made.kind.value, made.rows))
    except TelegramError as exc:
        log.info("could not finish the export's progress message: %s", exc)
