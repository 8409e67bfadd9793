"""/new: add a loan step by step (phone, borrower, amount, plan, due date, interest, number).

The answers wait in user_data[FORM] as JSON (amounts as strings, dates ISO) together with
the step being asked ("at") and a random token every button of this form carries, so a
button of an earlier /new, or one pressed after the loan was saved, changes nothing.
The steps themselves (questions, parsing, the form) are in add_loan_steps.py.
"""

from __future__ import annotations

import logging
import secrets
import warnings
from collections.abc import Callable
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)
from telegram.warnings import PTBUserWarning

from bot import keyboards, texts
from bot.context import Context, agency_of, answer_button, db, require_staff, settings_of
from bot.conversations import TEXT_INPUT, cancel_fallback
from bot.conversations import add_loan_steps as steps
from bot.conversations.add_loan_steps import STEPS, State
from bot.handlers.loans import show_card
from bot.keyboards import CB
from bot.updates import chat_of, message_of, query_of, text_of, user_data
from db.services.access import Actor
from db.services.errors import AccessDenied, InvalidInput, ServiceError
from db.services.loans import add as loan_service
from db.validation import parse_phone

log = logging.getLogger(__name__)

FORM = "add_loan"


def build_handler() -> ConversationHandler:
    """The add-loan conversation (persistent: a restart half-way through resumes it)."""

    def text(callback):
        return MessageHandler(TEXT_INPUT, callback)

    def press(state: State, callback):
        return CallbackQueryHandler(callback, pattern=f"^{CB.NEW_LOAN.value}{STEPS[state][0]}:")

    states: dict[object, list[BaseHandler[Update, Any, object]]] = {
        State.PHONE: [text(phone)],
        State.EXISTING: [press(State.EXISTING, _chosen(State.EXISTING, steps.use_borrower))],
        State.NAME: [text(_typed(State.NAME, steps.name))],
        State.ADDRESS: [
            text(_typed(State.ADDRESS, steps.address)),
            press(State.ADDRESS, _chosen(State.ADDRESS, steps.skip_address)),
        ],
        State.AMOUNT: [text(_typed(State.AMOUNT, steps.amount))],
        State.PLAN: [press(State.PLAN, _chosen(State.PLAN, steps.plan))],
        State.COUNT: [text(_typed(State.COUNT, steps.count))],
        State.FREQUENCY: [press(State.FREQUENCY, _chosen(State.FREQUENCY, steps.frequency))],
        State.FIRST_DUE: [text(_typed(State.FIRST_DUE, steps.first_due))],
        State.INTEREST: [press(State.INTEREST, _chosen(State.INTEREST, steps.interest))],
        State.RATE: [text(_typed(State.RATE, steps.rate))],
        State.NUMBER: [
            text(_typed(State.NUMBER, steps.number)),
            press(State.NUMBER, _chosen(State.NUMBER, steps.generate)),
        ],
        State.SUMMARY: [press(State.SUMMARY, confirm)],
    }
    for state in STEPS:  # typing where only buttons answer: ask again
        if state not in (State.ADDRESS, State.NUMBER):
            states[state].append(text(use_buttons))
    with warnings.catch_warnings():
        # per_message=False is meant: one form per chat; its buttons carry the form's token.
        warnings.filterwarnings("ignore", message=".*per_message", category=PTBUserWarning)
        return ConversationHandler(
            entry_points=[CommandHandler("new", start)],
            states=states,
            fallbacks=[cancel_fallback()],
            name="add_loan",
            persistent=True,
            allow_reentry=True,
        )


# --- asking ----------------------------------------------------------------------------


def _form(context: Context) -> dict:
    return user_data(context).setdefault(FORM, {})


async def _ask(update: Update, context: Context, state: State, reason: str | None = None) -> int:
    """Ask the question of state (after the reason the last answer was refused)."""
    form = _form(context)
    form["at"] = int(state)
    text, markup = steps.question(form, state, agency_of(context))
    # A pressed button was answered already: send, don't reply() (it answers again).
    await chat_of(update).send_message(
        texts.new_again(reason, text) if reason else text, reply_markup=markup
    )
    return state


async def _pressed(update: Update, context: Context, state: State) -> str | None:
    """The value of a pressed button of this form's current step, else None (answered)."""
    query = query_of(update)
    fields = keyboards.parse_fields(query.data, CB.NEW_LOAN, 3)
    step, choices = STEPS[state]
    if fields is None or fields[0] != step or fields[1] not in dict(choices):
        await answer_button(update, texts.BAD_BUTTON)
        return None
    if fields[2] != user_data(context).get(FORM, {}).get("tok"):
        await answer_button(update, texts.OLD_BUTTON)
        return None
    await query.answer()
    try:
        await query.edit_message_reply_markup(None)  # answered: its buttons go
    except TelegramError as exc:
        log.info("could not remove the buttons of a /new step: %s", exc)
    return fields[1]


# --- steps -------------------------------------------------------------------------------


@require_staff
async def start(update: Update, context: Context, actor: Actor) -> int:
    """/new: a fresh form, then the borrower's phone."""
    user_data(context).clear()
    user_data(context)[FORM] = {"tok": secrets.token_hex(4)}
    return await _ask(update, context, State.PHONE)


@require_staff
async def phone(update: Update, context: Context, actor: Actor) -> int:
    """The phone: a known borrower is offered, otherwise their name is asked."""
    region = settings_of(context).default_phone_region
    try:
        e164 = parse_phone(text_of(update), region=region)
        found = await db(
            context, loan_service.find_borrower, phone=e164, region=region, actor=actor
        )
    except InvalidInput as err:
        return await _ask(update, context, State.PHONE, err.message)
    except AccessDenied:  # another agent's borrower: a neutral answer, nobody named
        return await _ask(update, context, State.PHONE, texts.NEW_PHONE_UNAVAILABLE)
    form = _form(context)
    form["phone"] = e164
    if found is None:
        form.pop("existing", None)
        return await _ask(update, context, State.NAME)
    form["existing"] = {"name": found.name, "address": found.address, "loans": found.loans_count}
    return await _ask(update, context, State.EXISTING)


def _typed(state: State, parse: Callable[[Context, str], tuple[dict, State]]):
    """A handler for a typed answer: parse it into the form and ask the next question."""

    @require_staff
    async def typed(update: Update, context: Context, actor: Actor) -> int:
        try:
            values, then = parse(context, message_of(update).text or "")
        except InvalidInput as err:
            return await _ask(update, context, state, err.message)
        _form(context).update(values)
        return await _ask(update, context, then)

    return typed


def _chosen(state: State, apply: Callable[[dict, str], State | None]):
    """A handler for a button: apply its value to the form, then the next question (None:
    the user cancelled)."""

    @require_staff
    async def chosen(update: Update, context: Context, actor: Actor) -> int | None:
        value = await _pressed(update, context, state)
        if value is None:
            return None
        then = apply(_form(context), value)
        return await _cancel(update, context) if then is None else await _ask(update, context, then)

    return chosen


@require_staff
async def use_buttons(update: Update, context: Context, actor: Actor) -> None:
    """Typing where a button is expected: the question again, with its buttons."""
    await _ask(update, context, State(_form(context).get("at", State.PHONE)), texts.NEW_USE_BUTTONS)


async def _cancel(update: Update, context: Context) -> int:
    user_data(context).clear()
    await chat_of(update).send_message(texts.CANCELLED)
    return ConversationHandler.END


@require_staff
async def confirm(update: Update, context: Context, actor: Actor) -> int | None:
    """Confirm saves the loan once and shows its card; Cancel drops the form."""
    choice = await _pressed(update, context, State.SUMMARY)
    if choice is None:
        return None
    if choice == "no":
        return await _cancel(update, context)
    form = user_data(context).pop(FORM)  # a second Confirm finds no form: nothing twice
    try:
        args = steps.loan_args(context, form)
        view = await db(context, loan_service.add_loan, actor=actor, **args)
    except ServiceError as err:
        back = steps.BACK_TO.get(err.code)
        if back is None:
            user_data(context).clear()
            await chat_of(update).send_message(texts.service_error(err))
            return ConversationHandler.END
        user_data(context)[FORM] = form
        return await _ask(update, context, back, err.message)
    user_data(context).clear()
    await show_card(update, context, actor, view.id, note=texts.new_added(view.loan_number))
    return ConversationHandler.END
