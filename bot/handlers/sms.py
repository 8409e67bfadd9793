"""SMS commands: /broadcasts (and its Cancel buttons), /deliveries, /remind and Remind now.

The services check who may do what (admins for broadcasts and reports; a loan's holder for
a reminder); these handlers translate and show.
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from telegram import Update
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot import keyboards, paging, texts
from bot.context import Context, answer_button, db, reply, require_staff, settings_of
from bot.conversations import actions
from bot.handlers.replies import command_text
from bot.keyboards import CB
from bot.updates import query_of
from db import clock
from db.models import BroadcastState, SuppressionKind
from db.services.access import Actor
from db.services.broadcasts import tracking as bc
from db.services.errors import Conflict, NotFound, ServiceError
from db.services.sms import deliveries, reminders, suppressions
from db.validation import parse_loan_number

log = logging.getLogger(__name__)

LIST_LIMIT = 10
SUPPRESSED_SHOWN = 10  # /deliveries lists the newest suppressed numbers, a Lift button each
FIND_LIMIT = 50  # a Cancel button names one of the latest this many broadcasts


def handlers() -> list[BaseHandler]:
    """The SMS commands and their buttons, in the order app.py registers them."""
    return [
        CommandHandler("broadcasts", broadcasts_command),
        CommandHandler("deliveries", deliveries_command),
        CommandHandler("remind", remind_command),
        CallbackQueryHandler(remind_button, pattern=keyboards.pattern(CB.LOAN_REMIND)),
        CallbackQueryHandler(cancel_button, pattern=keyboards.pattern(CB.BC_CANCEL)),
        CallbackQueryHandler(cancel_yes_button, pattern=keyboards.pattern(CB.BC_CANCEL_YES)),
        CallbackQueryHandler(list_button, pattern=keyboards.pattern(CB.BC_LIST)),
    ]


# --- /broadcasts ---------------------------------------------------------------------------


def _list_view(rows: list[bc.BroadcastLine], tz: ZoneInfo, note: str | None = None):
    """The /broadcasts text and its Cancel buttons (running broadcasts only)."""
    if not rows:
        return texts.BC_LIST_EMPTY, None
    lines = [note] if note else []
    lines.append(texts.BC_LIST_TITLE)
    for row in rows:
        lines.append(
            texts.bc_list_line(
                row.info.id,
                texts.BC_STATES[row.info.state.value],
                texts.local_time(row.info.created_at, tz),
                row.audience,
                row.progress.counts,
                row.progress.total,
            )
        )
    running = [
        (row.info.id, texts.BC_BTN_CANCEL.format(id=row.info.id))
        for row in rows
        if row.info.state is BroadcastState.QUEUED
    ]
    return "\n".join(lines), keyboards.broadcast_list(running)


@require_staff
async def broadcasts_command(update: Update, context: Context, actor: Actor) -> None:
    """/broadcasts: the latest broadcasts with their counts; Cancel on running ones."""
    try:
        rows = await db(context, bc.broadcast_lines, actor=actor, limit=LIST_LIMIT)
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    text, markup = _list_view(rows, settings_of(context).tz)
    head, *lines = text.split("\n")
    await paging.reply_pages(update, lines, head=head, reply_markup=markup)


async def _edit_list(
    update: Update, context: Context, actor: Actor, note: str | None = None
) -> None:
    rows = await db(context, bc.broadcast_lines, actor=actor, limit=LIST_LIMIT)
    text, markup = _list_view(rows, settings_of(context).tz, note)
    try:
        await query_of(update).edit_message_text(text, reply_markup=markup)
    except BadRequest as exc:
        if "not modified" not in exc.message.lower():
            raise


@require_staff
async def cancel_button(update: Update, context: Context, actor: Actor) -> None:
    """bc:cancel:<id>: ask to confirm, in place of the list."""
    ids = keyboards.parse_ids(query_of(update).data, CB.BC_CANCEL)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    try:
        rows = await db(context, bc.broadcast_lines, actor=actor, limit=FIND_LIMIT)
    except ServiceError as err:
        await answer_button(update, err.message)
        return
    found = next((row for row in rows if row.info.id == ids[0]), None)
    if found is None or found.info.state is not BroadcastState.QUEUED:
        await answer_button(update, texts.OLD_BUTTON)
        await _edit_list(update, context, actor)
        return
    await query_of(update).answer()
    await query_of(update).edit_message_text(
        texts.bc_cancel_confirm(found.info.id, found.audience, found.progress.counts["queued"]),
        reply_markup=keyboards.broadcast_cancel(
            found.info.id, texts.BC_BTN_CANCEL_YES, texts.BC_BTN_BACK
        ),
    )


@require_staff
async def cancel_yes_button(update: Update, context: Context, actor: Actor) -> None:
    """bc:cxl:<id>: cancel the queued messages, then show the list again."""
    ids = keyboards.parse_ids(query_of(update).data, CB.BC_CANCEL_YES)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    try:
        count = await db(context, bc.cancel_and_count, actor=actor, broadcast_id=ids[0])
    except (Conflict, NotFound) as err:  # done or gone meanwhile: show the list as it is
        await answer_button(update, err.message)
        await _edit_list(update, context, actor)
        return
    except ServiceError as err:
        await answer_button(update, err.message)
        return
    log.info("broadcast %s canceled by staff %s", ids[0], actor.staff_id)
    await query_of(update).answer()
    await _edit_list(update, context, actor, note=texts.bc_canceled(ids[0], count))


@require_staff
async def list_button(update: Update, context: Context, actor: Actor) -> None:
    """bc:list:0: back to the list (fresh counts)."""
    if keyboards.parse_fields(query_of(update).data, CB.BC_LIST, 1) is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    try:
        await _edit_list(update, context, actor)
    except ServiceError as err:
        await answer_button(update, err.message)
        return
    await query_of(update).answer()


# --- /deliveries ---------------------------------------------------------------------------


def _period(title: str, period: deliveries.PeriodCounts) -> str:
    rate = None if period.delivery_rate is None else str(period.delivery_rate)
    return texts.dlv_period(title, sum(period.totals.values()), period.totals, rate, period.by_kind)


def _suppressed(rows: list[suppressions.SuppressionInfo], tz: ZoneInfo):
    """The suppressed numbers' text and a Lift button for each an admin may lift."""
    shown = rows[:SUPPRESSED_SHOWN]
    text = texts.sup_list(
        [(r.phone, r.kind.value, r.reason, texts.local_time(r.created_at, tz)) for r in shown],
        more=len(rows) > SUPPRESSED_SHOWN,
    )
    liftable = [
        (r.phone, texts.sup_btn_lift(r.phone))
        for r in shown
        if r.kind is not SuppressionKind.OPT_OUT
    ]
    return text, keyboards.suppressed_lift(liftable)


@require_staff
async def deliveries_command(update: Update, context: Context, actor: Actor) -> None:
    """/deliveries: the last day and week by status and kind, the top errors, and the
    suppressed numbers with a Lift button each."""
    try:
        overview = await db(
            context,
            deliveries.deliveries_overview,
            actor=actor,
            now=clock.utcnow(),
            suppressed_limit=SUPPRESSED_SHOWN + 1,  # one more than shown: "more" is said
        )
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    report = overview.report
    errors = [(e.code, e.count, e.words) for e in report.top_errors]
    listing, markup = _suppressed(overview.suppressed, settings_of(context).tz)
    blocks = [
        _period("Last 24 hours", report.day),
        _period("Last 7 days", report.week),
        texts.dlv_errors(errors),
        listing,
    ]
    await paging.reply_pages(
        update, ["", *"\n\n".join(blocks).split("\n")], head=texts.DLV_TITLE, reply_markup=markup
    )


# --- /remind and Remind now ---------------------------------------------------------------


def _when(moment: datetime, tz: ZoneInfo) -> str:
    """HH:MM in the agency's zone, with the date when it is not today."""
    local = moment.astimezone(tz)
    if local.date() == clock.utcnow().astimezone(tz).date():
        return local.strftime("%H:%M")
    return local.strftime("%H:%M on %d %b")


async def _remind(update: Update, context: Context, actor: Actor, number: str) -> None:
    settings = settings_of(context)
    try:
        info = await db(
            context,
            reminders.queue_reminder_now,
            actor=actor,
            loan_number=number,
            today=actions.today_of(context),
            settings=settings,
        )
    except ServiceError as err:
        await actions.say(update, texts.service_error(err))
        return
    waits = _when(info.waits_until, settings.tz) if info.waits_until else None
    await actions.say(update, texts.remind_queued(parse_loan_number(number), waits))


@require_staff
async def remind_command(update: Update, context: Context, actor: Actor) -> None:
    """/remind <number>: one reminder now, subject to the SMS rules."""
    number = await command_text(update, context, texts.REMIND_USAGE)
    if number is None:
        return
    await _remind(update, context, actor, number)


@require_staff
async def remind_button(update: Update, context: Context, actor: Actor) -> None:
    """ln:rem:<id>:<version> on a card; a stale card is shown afresh instead."""
    view = await actions.loan_of_button(update, context, actor, CB.LOAN_REMIND)
    if view is not None:
        await _remind(update, context, actor, view.loan_number)
