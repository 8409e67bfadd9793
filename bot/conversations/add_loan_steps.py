"""The steps of /new (add_loan.py): states, questions, and turning answers into the form.

Nothing here talks to Telegram or the database: a typed answer is parsed into form values
and the next state, a pressed button's value is applied to the form, and a finished form
becomes add_loan's arguments.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import IntEnum

from telegram import InlineKeyboardMarkup

from bot import keyboards, texts, views
from bot.context import Context, agency_of, settings_of
from db import clock
from db.agency import Agency
from db.models import Frequency, InterestMethod
from db.services.loans import add as loan_service
from db.validation import (
    clean_name,
    clean_text,
    parse_amount,
    parse_count,
    parse_date,
    parse_loan_number,
    parse_rate,
)

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
STEPS = {
    State.EXISTING: ("bor", texts.NEW_USE_BORROWER),
    State.ADDRESS: ("adr", texts.NEW_SKIP),
    State.PLAN: ("plan", texts.NEW_PLANS),
    State.FREQUENCY: ("freq", texts.NEW_FREQUENCIES),
    State.INTEREST: ("int", texts.NEW_INTEREST),
    State.NUMBER: ("num", texts.NEW_GENERATE),
    State.SUMMARY: ("ok", texts.NEW_CONFIRM),
}
_ASK = {
    State.PHONE: texts.NEW_ASK_PHONE,
    State.NAME: texts.NEW_ASK_NAME,
    State.ADDRESS: texts.NEW_ASK_ADDRESS,
    State.AMOUNT: texts.NEW_ASK_AMOUNT,
    State.PLAN: texts.NEW_ASK_PLAN,
    State.COUNT: texts.NEW_ASK_COUNT,
    State.FREQUENCY: texts.NEW_ASK_FREQUENCY,
    State.INTEREST: texts.NEW_ASK_INTEREST,
    State.RATE: texts.NEW_ASK_RATE,
    State.NUMBER: texts.NEW_ASK_NUMBER,
}
# Where a refusal at Confirm sends the user back to (by the service's error code).
BACK_TO = {
    "loan_number_taken": State.NUMBER,
    "loan_number_format": State.NUMBER,
    "date_past": State.FIRST_DUE,
    "date_far": State.FIRST_DUE,
    "installments_too_many": State.COUNT,
    "int_range": State.COUNT,
    "amount_not_positive": State.AMOUNT,
    "amount_too_large": State.AMOUNT,
    "amount_decimals": State.AMOUNT,
    "rate_range": State.RATE,
    "rate_method": State.INTEREST,
    "phone_format": State.PHONE,
    "phone_invalid": State.PHONE,
    "name_short": State.NAME,
    "phone_unavailable": State.PHONE,
}


def draft(form: dict) -> views.Draft:
    """The finished form as typed values."""
    return views.Draft(
        name=form["name"],
        existing=bool(form.get("existing")),
        phone=form["phone"],
        address=form.get("address"),
        principal=Decimal(form["amount"]),
        count=form["count"],
        frequency=Frequency(form["freq"]),
        first_due=date.fromisoformat(form["due"]),
        method=InterestMethod(form["method"]),
        rate=Decimal(form["rate"]),
        number=form.get("number"),
    )


def question(form: dict, state: State, agency: Agency) -> tuple[str, InlineKeyboardMarkup | None]:
    """The text of state's question and its buttons (None when it is typed)."""
    if state is State.EXISTING:
        found = form["existing"]
        text = texts.new_existing(found["name"], found["address"], found["loans"])
    elif state is State.SUMMARY:
        text = views.new_summary(draft(form), agency)
    elif state is State.FIRST_DUE:
        text = texts.NEW_ASK_DUE_SINGLE if form["count"] == 1 else texts.NEW_ASK_DUE_FIRST
    else:
        text = _ASK[state]
    if state not in STEPS:
        return text, None
    step, choices = STEPS[state]
    return text, keyboards.new_loan_choices(form["tok"], step, choices)


def loan_args(context: Context, form: dict) -> dict:
    """add_loan's keyword arguments (but actor) from the finished form."""
    settings = settings_of(context)
    done = draft(form)
    return {
        "phone": done.phone,
        "name": done.name,
        "address": done.address,
        "principal": done.principal,
        "first_due": done.first_due,
        "today": clock.today(settings.tz),
        "count": done.count,
        "frequency": done.frequency,
        "method": done.method,
        "rate": done.rate,
        "loan_number": done.number,
        "max_amount": settings.max_amount,
        "agency": agency_of(context),
    }


# --- typed answers: (form values, next state); refusals raise InvalidInput ----------------


def name(context: Context, text: str) -> tuple[dict, State]:
    return {"name": clean_name(text)}, State.ADDRESS


def address(context: Context, text: str) -> tuple[dict, State]:
    skip = text.strip().lower() == "skip"
    value = None if skip else clean_text(text, field="address", max_len=300, required=False)
    return {"address": value}, State.AMOUNT


def amount(context: Context, text: str) -> tuple[dict, State]:
    agency = agency_of(context)
    value = parse_amount(text, max_amount=settings_of(context).max_amount, agency=agency)
    return {"amount": str(value)}, State.PLAN


def count(context: Context, text: str) -> tuple[dict, State]:
    value = parse_count(text, field="number of installments", low=2, high=MAX_INSTALLMENTS)
    return {"count": value}, State.FREQUENCY


def first_due(context: Context, text: str) -> tuple[dict, State]:
    value = parse_date(text, today=clock.today(settings_of(context).tz), future=True)
    return {"due": value.isoformat()}, State.INTEREST


def rate(context: Context, text: str) -> tuple[dict, State]:
    return {"rate": str(parse_rate(text))}, State.NUMBER


def number(context: Context, text: str) -> tuple[dict, State]:
    auto = text.strip().lower() in ("auto", "generate")
    return {"number": None if auto else parse_loan_number(text)}, State.SUMMARY


# --- pressed buttons: apply the value to the form, return the next state (None: cancel) ---


def use_borrower(form: dict, value: str) -> State | None:
    if value == "no":
        return None
    form["name"], form["address"] = form["existing"]["name"], form["existing"]["address"]
    return State.AMOUNT


def skip_address(form: dict, value: str) -> State:
    form["address"] = None
    return State.AMOUNT


def plan(form: dict, value: str) -> State:
    if value == "single":
        form.update(count=1, freq=Frequency.MONTHLY.value)
        return State.FIRST_DUE
    return State.COUNT


def frequency(form: dict, value: str) -> State:
    form["freq"] = Frequency(value).value
    return State.FIRST_DUE


def interest(form: dict, value: str) -> State:
    form.update(method=InterestMethod(value).value, rate="0")
    return State.NUMBER if value == InterestMethod.NONE.value else State.RATE


def generate(form: dict, value: str) -> State:
    form["number"] = None
    return State.SUMMARY
