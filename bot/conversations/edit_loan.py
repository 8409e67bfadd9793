"""/edit and the card's Edit button: a field, its new value, before → after, then the change.

The summary is the service's own answer: edit_loan runs in a savepoint that is rolled
back (actions.dry_run), so it shows exactly what Confirm will write, or why it will not.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from enum import IntEnum
from typing import Any

from telegram import Update
from telegram.ext import CallbackQueryHandler, ConversationHandler, MessageHandler

from bot import keyboards, texts, views
from bot.context import Context, agency_of, require_staff, settings_of
from bot.conversations import TEXT_INPUT, actions, loan_action
from bot.conversations.actions import NUMBER, VERSION
from bot.conversations.loan_action import Ask, Change, Confirm, Entry
from bot.keyboards import CB
from bot.updates import query_of, text_of, user_data
from db.agency import Agency
from db.money import format_money
from db.services.access import Actor
from db.services.errors import InvalidInput
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
# refusals of the reason itself: ask it again
REASON_REFUSALS = {"reason_short", "reason_needed", "text_long", "text_control"}


class State(IntEnum):
    FIELD = 1
    VALUE = 2
    CONFIRM = 3
    REASON = 4


def build_handler() -> ConversationHandler:
    """The edit conversation."""
    field_pressed = CallbackQueryHandler(field_button, pattern=keyboards.pattern(CB.EDIT_FIELD))
    return loan_action.conversation(
        "edit_loan",
        entry_points=loan_action.entry_points(CB.LOAN_EDIT, edit_entry, "edit"),
        states={
            State.FIELD: loan_action.buttons_only(NAME, [field_pressed]),
            State.VALUE: [MessageHandler(TEXT_INPUT, value_text)],
            State.REASON: [MessageHandler(TEXT_INPUT, reason_text)],
            State.CONFIRM: loan_action.confirm_step(NAME, confirm, CB.EDIT_CONFIRM),
        },
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


EDIT_ENTRY = Entry(button=CB.LOAN_EDIT, usage=texts.EDIT_USAGE)


@require_staff
async def edit_entry(update: Update, context: Context, actor: Actor) -> int:
    """/edit <number> or Edit on a card: which field?"""
    view = await loan_action.load(update, context, actor, EDIT_ENTRY)
    if view is None:
        return actions.END
    choices = [(f.value, texts.EDIT_FIELDS[f.value]) for f in EditableField]
    markup = keyboards.action_choices(CB.EDIT_FIELD, view.id, choices)
    text = texts.edit_ask_field(view.loan_number, view.borrower_name)
    state = await loan_action.start(
        update, context, NAME, view, text, State.FIELD, reply_markup=markup
    )
    user_data(context)[CURRENT] = _current(view)
    return state


@actions.step(NAME)
async def field_button(update: Update, context: Context, actor: Actor) -> int | None:
    """A field pressed: ask its new value, showing the current one."""
    data = user_data(context)
    field = await actions.chosen(update, context, CB.EDIT_FIELD, data[CURRENT])
    if field is None:
        return None
    data[FIELD] = field
    current = shown(field, data[CURRENT][field], agency_of(context))
    await query_of(update).edit_message_text(texts.edit_ask_value(field, current))
    return State.VALUE


def _edit(context: Context, actor: Actor, version: int) -> dict[str, Any]:
    """edit_loan's arguments for this conversation's field and value."""
    settings, data = settings_of(context), user_data(context)
    return {
        "actor": actor,
        "loan_number": data[NUMBER],
        "field": EditableField(data[FIELD]),
        "value": data[VALUE],
        "expected_version": version,
        "today": actions.today_of(context),
        "max_amount": settings.max_amount,
        "reason": data.get(REASON),
        "agency": agency_of(context),
    }


def _edited(context: Context, done: EditResult) -> tuple[str, int]:
    agency = agency_of(context)
    text = texts.edit_done(
        done.field.value,
        shown(done.field, done.before, agency),
        shown(done.field, done.after, agency),
    )
    return text, done.loan.id


EDIT = Confirm(CB.EDIT_CONFIRM, texts.BTN_CONFIRM, Change(loan_service.edit_loan, _edited), _edit)
# An agent's long due-date move needs a reason; another value can cure a bad one.
REASON_NEEDED = Ask(texts.EDIT_ASK_REASON, State.REASON, lambda err: err.code == "reason_needed")
VALUE_AGAIN = Ask(
    texts.EDIT_ASK_AGAIN,
    State.VALUE,
    lambda err: isinstance(err, InvalidInput) or err.code in RETRYABLE,
)
REASON_AGAIN = Ask(
    texts.EDIT_ASK_REASON,
    State.REASON,
    lambda err: isinstance(err, InvalidInput) and err.code in REASON_REFUSALS,
)


@actions.step(NAME)
async def value_text(update: Update, context: Context, actor: Actor) -> int:
    """The new value typed: preview the change (nothing written) and ask to confirm."""
    data = user_data(context)
    data[VALUE] = text_of(update)
    data.pop(REASON, None)
    arguments = _edit(context, actor, data[VERSION])
    preview = await loan_action.preview(
        update, context, actor, loan_service.edit_loan, arguments, (REASON_NEEDED, VALUE_AGAIN)
    )
    return preview if isinstance(preview, int) else await _ask_confirm(update, context, preview)


@actions.step(NAME)
async def reason_text(update: Update, context: Context, actor: Actor) -> int:
    """The reason for a long due-date move: preview again with it, then confirm."""
    data = user_data(context)
    data[REASON] = text_of(update)
    arguments = _edit(context, actor, data[VERSION])
    preview = await loan_action.preview(
        update, context, actor, loan_service.edit_loan, arguments, (REASON_AGAIN,)
    )
    return preview if isinstance(preview, int) else await _ask_confirm(update, context, preview)


async def _ask_confirm(update: Update, context: Context, preview: EditResult) -> int:
    """before → after (and the reason, if one was asked), with Confirm / Cancel."""
    data = user_data(context)
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
    await loan_action.ask_confirm(update, context, EDIT, text)
    return State.CONFIRM


@actions.step(NAME)
async def confirm(update: Update, context: Context, actor: Actor) -> int | None:
    """Confirm pressed: make the change, say before → after, show the fresh card."""
    return await loan_action.confirmed(update, context, actor, EDIT)
