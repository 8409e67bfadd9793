"""/new: add a loan step by step (phone, borrower, amount, plan, due date, interest, number).

The answers wait in user_data[FORM] as JSON (amounts as strings, dates ISO) together with
the step being asked ("at") and a random token every button of this form carries, so a
button of an earlier /new, or one pressed after the loan was saved, changes nothing.
"""

from __future__ import annotations

import logging
import secrets
import warnings
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from enum import IntEnum

from telegram import InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler
from telegram.warnings import PTBUserWarning

from bot import keyboards, texts, views
from bot.context import Context, answer_button, db, require_staff, settings_of
from bot.conversations import TEXT_INPUT, cancel_fallback
from bot.handlers.loans import show_card
from bot.keyboards import CB
from db import clock
from db.models import Frequency, InterestMethod
from db.services import loans as loan_service
from db.services.access import Actor
from db.services.errors import InvalidInput, ServiceError
from db.validation import (
    clean_name,
    clean_text,
    parse_amount,
    parse_count,
    parse_date,
    parse_loan_number,
    parse_phone,
    parse_rate,
)

log = logging.getLogger(__name__)

FORM = "add_loan"
MAX_INSTALLMENTS = loan_service.MAX_INSTALLMENTS


class State(IntEnum):
    PHONE = 1
    EXISTING = 2
    NAME = 3
    ADDRESS = 4
    AMOUNT = 5
    PLAN = 6
    COUNT = 7
    FREQUENCY = 8
    FIRST_DUE = 9
    INTEREST = 10
    RATE = 11
    NUMBER = 12
    SUMMARY = 13


# The button steps: (callback step name, the state it answers, the choices offered).
_STEPS = {
    State.EXISTING: ("bor", texts.NEW_USE_BORROWER),
    State.ADDRESS: ("adr", texts.NEW_SKIP),
    State.PLAN: ("plan", texts.NEW_PLANS),
    State.FREQUENCY: ("freq", texts.NEW_FREQUENCIES),
    State.INTEREST: ("int", texts.NEW_INTEREST),
    State.NUMBER: ("num", texts.NEW_GENERATE),
    State.SUMMARY: ("ok", texts.NEW_CONFIRM),
}
_ASK = {
    State.PHONE: texts.NEW_ASK_PHONE, State.NAME: texts.NEW_ASK_NAME,
    State.ADDRESS: texts.NEW_ASK_ADDRESS, State.AMOUNT: texts.NEW_ASK_AMOUNT,
    State.PLAN: texts.NEW_ASK_PLAN, State.COUNT: texts.NEW_ASK_COUNT,
    State.FREQUENCY: texts.NEW_ASK_FREQUENCY, State.INTEREST: texts.NEW_ASK_INTEREST,
    State.RATE: texts.NEW_ASK_RATE, State.NUMBER: texts.NEW_ASK_NUMBER,
}
# Where a refusal at Confirm sends the user back to (by the service's error code).
_BACK_TO = {
    "loan_number_taken": State.NUMBER, "loan_number_format": State.NUMBER,
    "date_past": State.FIRST_DUE, "date_far": State.FIRST_DUE,
    "installments_too_many": State.COUNT, "int_range": State.COUNT,
    "amount_not_positive": State.AMOUNT, "amount_too_large": State.AMOUNT,
    "amount_decimals": State.AMOUNT, "rate_range": State.RATE, "rate_method": State.INTEREST,
    "phone_format": State.PHONE, "phone_invalid": State.PHONE, "name_short": State.NAME,
}


def build_handler() -> ConversationHandler:
    """The add-loan conversation (persistent: a restart half-way through resumes it)."""
    def text(callback):
        return MessageHandler(TEXT_INPUT, callback)

    def press(state: State, callback):
        return CallbackQueryHandler(callback, pattern=f"^{CB.NEW_LOAN.value}{_STEPS[state][0]}:")

    states = {
        State.PHONE: [text(phone)],
        State.EXISTING: [press(State.EXISTING, _chosen(State.EXISTING, _use_borrower))],
        State.NAME: [text(_typed(State.NAME, _name))],
        State.ADDRESS: [text(_typed(State.ADDRESS, _address)),
                        press(State.ADDRESS, _chosen(State.ADDRESS, _skip_address))],
        State.AMOUNT: [text(_typed(State.AMOUNT, _amount))],
        State.PLAN: [press(State.PLAN, _chosen(State.PLAN, _plan))],
        State.COUNT: [text(_typed(State.COUNT, _count))],
        State.FREQUENCY: [press(State.FREQUENCY, _chosen(State.FREQUENCY, _frequency))],
        State.FIRST_DUE: [text(_typed(State.FIRST_DUE, _first_due))],
        State.INTEREST: [press(State.INTEREST, _chosen(State.INTEREST, _interest))],
        State.RATE: [text(_typed(State.RATE, _rate))],
        State.NUMBER: [text(_typed(State.NUMBER, _number)),
                       press(State.NUMBER, _chosen(State.NUMBER, _generate))],
        State.SUMMARY: [press(State.SUMMARY, confirm)],
    }
    for state in _STEPS:  # typing where only buttons answer: ask again
        if state not in (State.ADDRESS, State.NUMBER):
            states[state].append(text(use_buttons))
    with warnings.catch_warnings():
        # per_message=False is meant: one form per chat; its buttons carry the form's token.
        warnings.filterwarnings("ignore", message=".*per_message", category=PTBUserWarning)
        return ConversationHandler(
            entry_points=[CommandHandler("new", start)], states=states,
            fallbacks=[cancel_fallback()], name="add_loan", persistent=True, allow_reentry=True,
        )


# --- asking ----------------------------------------------------------------------------


def _form(context: Context) -> dict:
    return context.user_data.setdefault(FORM, {})


def _draft(form: dict) -> views.Draft:
    return views.Draft(
        name=form["name"], existing=bool(form.get("existing")), phone=form["phone"],
        address=form.get("address"), principal=Decimal(form["amount"]), count=form["count"],
        frequency=Frequency(form["freq"]), first_due=date.fromisoformat(form["due"]),
        method=InterestMethod(form["method"]), rate=Decimal(form["rate"]),
        number=form.get("number"),
    )


def _question(context: Context, state: State) -> tuple[str, InlineKeyboardMarkup | None]:
    form = _form(context)
    if state is State.EXISTING:
        found = form["existing"]
        text = texts.new_existing(found["name"], found["address"], found["loans"])
    elif state is State.SUMMARY:
        text = views.new_summary(_draft(form), views.Fmt.of(settings_of(context)))
    elif state is State.FIRST_DUE:
        text = texts.NEW_ASK_DUE_SINGLE if form["count"] == 1 else texts.NEW_ASK_DUE_FIRST
    else:
        text = _ASK[state]
    if state not in _STEPS:
        return text, None
    step, choices = _STEPS[state]
    return text, keyboards.new_loan_choices(form["tok"], step, choices)


async def _ask(update: Update, context: Context, state: State, reason: str | None = None) -> int:
    """Ask the question of state (after the reason the last answer was refused)."""
    _form(context)["at"] = int(state)
    text, markup = _question(context, state)
    # A pressed button was answered already: send, don't reply() (it answers again).
    await update.effective_chat.send_message(texts.new_again(reason, text) if reason else text,
                                             reply_markup=markup)
    return state


async def _pressed(update: Update, context: Context, state: State) -> str | None:
    """The value of a pressed button of this form's current step, else None (answered)."""
    query = update.callback_query
    fields = keyboards.parse_fields(query.data, CB.NEW_LOAN, 3)
    step, choices = _STEPS[state]
    if fields is None or fields[0] != step or fields[1] not in dict(choices):
        await answer_button(update, texts.BAD_BUTTON)
        return None
    if fields[2] != context.user_data.get(FORM, {}).get("tok"):
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
    context.user_data.clear()
    context.user_data[FORM] = {"tok": secrets.token_hex(4)}
    return await _ask(update, context, State.PHONE)


@require_staff
async def phone(update: Update, context: Context, actor: Actor) -> int:
    """The phone: a known borrower is offered, otherwise their name is asked."""
    region = settings_of(context).default_phone_region
    try:
        e164 = parse_phone(update.message.text, region=region)
        found = await db(context, loan_service.find_borrower, phone=e164, region=region)
    except InvalidInput as err:
        return await _ask(update, context, State.PHONE, err.message)
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
            values, then = parse(context, update.message.text or "")
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


def _name(context: Context, text: str) -> tuple[dict, State]:
    return {"name": clean_name(text)}, State.ADDRESS


def _address(context: Context, text: str) -> tuple[dict, State]:
    skip = text.strip().lower() == "skip"
    value = None if skip else clean_text(text, field="address", max_len=300, required=False)
    return {"address": value}, State.AMOUNT


def _amount(context: Context, text: str) -> tuple[dict, State]:
    settings = settings_of(context)
    value = parse_amount(text, max_amount=settings.max_amount, minor_units=settings.minor_units)
    return {"amount": str(value)}, State.PLAN


def _count(context: Context, text: str) -> tuple[dict, State]:
    value = parse_count(text, field="number of installments", low=2, high=MAX_INSTALLMENTS)
    return {"count": value}, State.FREQUENCY


def _first_due(context: Context, text: str) -> tuple[dict, State]:
    value = parse_date(text, today=clock.today(settings_of(context).tz), future=True)
    return {"due": value.isoformat()}, State.INTEREST


def _rate(context: Context, text: str) -> tuple[dict, State]:
    return {"rate": str(parse_rate(text))}, State.NUMBER


def _number(context: Context, text: str) -> tuple[dict, State]:
    auto = text.strip().lower() in ("auto", "generate")
    return {"number": None if auto else parse_loan_number(text)}, State.SUMMARY


def _use_borrower(form: dict, value: str) -> State | None:
    if value == "no":
        return None
    form["name"], form["address"] = form["existing"]["name"], form["existing"]["address"]
    return State.AMOUNT


def _skip_address(form: dict, value: str) -> State:
    form["address"] = None
    return State.AMOUNT


def _plan(form: dict, value: str) -> State:
    if value == "single":
        form.update(count=1, freq=Frequency.MONTHLY.value)
        return State.FIRST_DUE
    return State.COUNT


def _frequency(form: dict, value: str) -> State:
    form["freq"] = Frequency(value).value
    return State.FIRST_DUE


def _interest(form: dict, value: str) -> State:
    form.update(method=InterestMethod(value).value, rate="0")
    return State.NUMBER if value == InterestMethod.NONE.value else State.RATE


def _generate(form: dict, value: str) -> State:
    form["number"] = None
    return State.SUMMARY


@require_staff
async def use_buttons(update: Update, context: Context, actor: Actor) -> None:
    """Typing where a button is expected: the question again, with its buttons."""
    await _ask(update, context, State(_form(context).get("at", State.PHONE)),
               texts.NEW_USE_BUTTONS)


async def _cancel(update: Update, context: Context) -> int:
    context.user_data.clear()
    await update.effective_chat.send_message(texts.CANCELLED)
    return ConversationHandler.END


@require_staff
async def confirm(update: Update, context: Context, actor: Actor) -> int | None:
    """Confirm saves the loan once and shows its card; Cancel drops the form."""
    choice = await _pressed(update, context, State.SUMMARY)
    if choice is None:
        return None
    if choice == "no":
        return await _cancel(update, context)
    form = context.user_data.pop(FORM)  # a second Confirm finds no form: nothing twice
    try:
        view = await db(context, loan_service.add_loan, actor=actor, **_loan_args(context, form))
    except ServiceError as err:
        back = _BACK_TO.get(err.code)
        if back is None:
            context.user_data.clear()
            await update.effective_chat.send_message(texts.service_error(err))
            return ConversationHandler.END
        context.user_data[FORM] = form
        return await _ask(update, context, back, err.message)
    context.user_data.clear()
    await show_card(update, context, actor, view.id, note=texts.new_added(view.loan_number))
    return ConversationHandler.END


def _loan_args(context: Context, form: dict) -> dict:
    settings = settings_of(context)
    draft = _draft(form)
    return {
        "phone": draft.phone, "name": draft.name, "address": draft.address,
        "principal": draft.principal, "first_due": draft.first_due,
        "today": clock.today(settings.tz), "count": draft.count, "frequency": draft.frequency,
        "method": draft.method, "rate": draft.rate, "loan_number": draft.number,
        "region": settings.default_phone_region, "max_amount": settings.max_amount,
    }
