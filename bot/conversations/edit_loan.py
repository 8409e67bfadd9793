"""/edit and the card's Edit button: a field, its new value, before → after, then the change.

The summary is the service's own answer: edit_loan runs in a savepoint that is rolled
back (actions.dry_run), so it shows exactly what Confirm will write, or why it will not.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from enum import IntEnum

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler

from bot import keyboards, texts, views
from bot.context import Context, agency_of, db, require_staff, settings_of
from bot.conversations import TEXT_INPUT, actions, cancel_fallback
from bot.conversations.actions import LOAN_ID, NUMBER, VERSION
from bot.handlers.loans import show_card
from bot.keyboards import CB
from db.agency import Agency
from db.money import format_money
from db.services.access import Actor
from db.services.errors import InvalidInput, ServiceError
from db.services.loans import add as loan_service
from db.services.loans.add import EditableField, EditResult
from db.services.loans.snapshots import LoanView

log = logging.getLogger(__name__)

NAME = "edit"
FIELD = "act.field"
VALUE = "act.value"
CURRENT = "act.current"
REASON = "act.reason"  # asked only when the service wants one (an agent's long due-date move)
RETRYABLE = {"phone_taken"}  # refusals another value can cure: ask again


class State(IntEnum):
    FIELD = 1
    VALUE = 2
    CONFIRM = 3
    REASON = 4


def build_handler() -> ConversationHandler:
    """The edit conversation."""
    return actions.conversation(
        entry_points=[
            CommandHandler("edit", edit_command),
            CallbackQueryHandler(edit_button, pattern=keyboards.pattern(CB.LOAN_EDIT)),
        ],
        states={
            State.FIELD: [
                CallbackQueryHandler(field_button, pattern=keyboards.pattern(CB.EDIT_FIELD)),
                MessageHandler(TEXT_INPUT, actions.buttons_only(NAME)),
            ],
            State.VALUE: [MessageHandler(TEXT_INPUT, value_text)],
            State.REASON: [MessageHandler(TEXT_INPUT, reason_text)],
            State.CONFIRM: [
                CallbackQueryHandler(confirm, pattern=keyboards.pattern(CB.EDIT_CONFIRM)),
                CallbackQueryHandler(
                    actions.cancel_step(NAME), pattern=keyboards.pattern(CB.ACTION_CANCEL)
                ),
                MessageHandler(TEXT_INPUT, actions.buttons_only(NAME)),
            ],
        },
        fallbacks=[cancel_fallback()],
        name="edit_loan",
    )


def _current(view: LoanView) -> dict[str, str]:
    """What each editable field holds now, as edit_loan reports it (str, "" for none)."""
    values = {
        EditableField.BORROWER_NAME: view.borrower_name,
        EditableField.BORROWER_PHONE: view.borrower_phone,
        EditableField.BORROWER_ADDRESS: view.borrower_address,
        EditableField.NEXT_DUE_DATE: view.next_due_date,
        EditableField.PRINCIPAL: view.principal,
    }
    return {field.value: "" if value is None else str(value) for field, value in values.items()}


def shown(field: str, value: str, agency: Agency) -> str:
    """A field's value as people read it: money formatted, dates as the card shows them."""
    if not value:
        return ""
    if field == EditableField.PRINCIPAL:
        return format_money(Decimal(value), agency)
    if field == EditableField.NEXT_DUE_DATE:
        return views.day(date.fromisoformat(value))
    return value


@require_staff
async def edit_command(update: Update, context: Context, actor: Actor) -> int:
    """/edit <number>: which field?"""
    view = await actions.loan_of_args(update, context, actor, texts.EDIT_USAGE)
    return actions.END if view is None else await _ask_field(update, context, view)


@require_staff
async def edit_button(update: Update, context: Context, actor: Actor) -> int:
    """Edit on a card (a stale card is shown afresh instead)."""
    view = await actions.loan_of_button(update, context, actor, CB.LOAN_EDIT)
    return actions.END if view is None else await _ask_field(update, context, view)


async def _ask_field(update: Update, context: Context, view: LoanView) -> int:
    actions.begin(context, NAME, view)
    context.user_data[CURRENT] = _current(view)
    choices = [(f.value, texts.EDIT_FIELDS[f.value]) for f in EditableField]
    await actions.say(
        update,
        texts.edit_ask_field(view.loan_number, view.borrower_name),
        reply_markup=keyboards.action_choices(CB.EDIT_FIELD, view.id, choices),
    )
    return State.FIELD


@actions.step(NAME)
async def field_button(update: Update, context: Context, actor: Actor) -> int | None:
    """A field pressed: ask its new value, showing the current one."""
    data = context.user_data
    field = await actions.chosen(update, context, CB.EDIT_FIELD, data[CURRENT])
    if field is None:
        return None
    data[FIELD] = field
    current = shown(field, data[CURRENT][field], agency_of(context))
    await update.callback_query.edit_message_text(texts.edit_ask_value(field, current))
    return State.VALUE


def _edit(context: Context, actor: Actor, value: str, version: int) -> dict:
    """edit_loan's arguments for this conversation's field and value."""
    settings, data = settings_of(context), context.user_data
    return {
        "actor": actor,
        "loan_number": data[NUMBER],
        "field": EditableField(data[FIELD]),
        "value": value,
        "expected_version": version,
        "today": actions.today_of(context),
        "max_amount": settings.max_amount,
        "reason": data.get(REASON),
        "agency": agency_of(context),
    }


@actions.step(NAME)
async def value_text(update: Update, context: Context, actor: Actor) -> int:
    """The new value typed: preview the change (nothing written) and ask to confirm."""
    data, value = context.user_data, update.message.text
    data.pop(REASON, None)
    try:
        preview: EditResult = await db(
            context,
            actions.dry_run,
            fn=loan_service.edit_loan,
            **_edit(context, actor, value, data[VERSION]),
        )
    except ServiceError as err:
        if err.code == "reason_needed":
            data[VALUE] = value
            await actions.say(update, texts.action_again(err.message, texts.EDIT_ASK_REASON))
            return State.REASON
        if isinstance(err, InvalidInput) or err.code in RETRYABLE:
            await actions.say(update, texts.action_again(err.message, texts.EDIT_ASK_AGAIN))
            return State.VALUE
        return await actions.refused(update, context, actor, err)
    data[VALUE] = value
    return await _ask_confirm(update, context, preview)


@actions.step(NAME)
async def reason_text(update: Update, context: Context, actor: Actor) -> int:
    """The reason for a long due-date move: preview again with it, then confirm."""
    data = context.user_data
    data[REASON] = update.message.text
    try:
        preview: EditResult = await db(
            context,
            actions.dry_run,
            fn=loan_service.edit_loan,
            **_edit(context, actor, data[VALUE], data[VERSION]),
        )
    except InvalidInput as err:
        if err.code not in ("reason_short", "reason_needed", "text_long", "text_control"):
            return await actions.refused(update, context, actor, err)
        await actions.say(update, texts.action_again(err.message, texts.EDIT_ASK_REASON))
        return State.REASON
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    return await _ask_confirm(update, context, preview)


async def _ask_confirm(update: Update, context: Context, preview: EditResult) -> int:
    """before → after (and the reason, if one was asked), with Confirm / Cancel."""
    data = context.user_data
    agency = agency_of(context)
    field = data[FIELD]
    text = texts.edit_confirm(
        data[NUMBER],
        field,
        shown(field, preview.before, agency),
        shown(field, preview.after, agency),
    )
    if data.get(REASON):
        text += texts.edit_reason_line(data[REASON])
    markup = keyboards.action_confirm(
        CB.EDIT_CONFIRM, data[LOAN_ID], data[VERSION], texts.BTN_CONFIRM, texts.BTN_CANCEL
    )
    await actions.say(update, text, reply_markup=markup)
    return State.CONFIRM


@actions.step(NAME)
async def confirm(update: Update, context: Context, actor: Actor) -> int | None:
    """Confirm pressed: make the change, say before → after, show the fresh card."""
    ids = await actions.pressed(update, context, CB.EDIT_CONFIRM)
    if ids is None:
        return None
    query = update.callback_query
    try:
        done: EditResult = await db(
            context,
            loan_service.edit_loan,
            **_edit(context, actor, context.user_data[VALUE], ids[1]),
        )
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    actions.finish(context)
    agency = agency_of(context)
    await query.edit_message_text(
        texts.edit_done(
            done.field.value,
            shown(done.field, done.before, agency),
            shown(done.field, done.after, agency),
        )
    )
    await show_card(update, context, actor, done.loan.id)
    return actions.END
