"""/promise and the card's Promise button: how much the borrower promised, and by when."""

from __future__ import annotations

import logging
from decimal import Decimal
from enum import IntEnum
from typing import Any

from telegram import Update
from telegram.ext import ConversationHandler, MessageHandler

from bot import texts, views
from bot.context import Context, agency_of, require_staff
from bot.conversations import TEXT_INPUT, actions, loan_action
from bot.conversations.actions import LOAN_ID, NUMBER
from bot.conversations.loan_action import Ask, Change, Entry
from bot.keyboards import CB
from bot.updates import text_of, user_data
from db.services.access import Actor
from db.services.collection import promises
from db.services.errors import InvalidInput
from db.services.loans.snapshots import LoanView
from db.validation import parse_date

log = logging.getLogger(__name__)

NAME = "promise"
AMOUNT = "act.amount"  # str(Decimal)


class State(IntEnum):
    AMOUNT = 1
    DATE = 2


def build_handler() -> ConversationHandler:
    """The promise conversation."""
    return loan_action.conversation(
        "promise",
        entry_points=loan_action.entry_points(CB.LOAN_PROMISE, promise_entry, "promise"),
        states={
            State.AMOUNT: [MessageHandler(TEXT_INPUT, amount_text)],
            State.DATE: [MessageHandler(TEXT_INPUT, date_text)],
        },
    )


def _promised(context: Context, made: Any) -> tuple[str, int]:
    note = texts.promise_done(actions.money(context, made.amount), views.day(made.promised_date))
    return note, user_data(context)[LOAN_ID]


PROMISE_ENTRY = Entry(button=CB.LOAN_PROMISE, usage=texts.PROMISE_USAGE, most=3)
PROMISE = Change(promises.record_promise, _promised)
DATE_AGAIN = Ask(texts.PROMISE_ASK_DATE, State.DATE)


@require_staff
async def promise_entry(update: Update, context: Context, actor: Actor) -> int:
    """/promise <number> [amount [date]] or Promise on a card: ask whatever is missing."""
    view = await loan_action.load(update, context, actor, PROMISE_ENTRY)
    if view is None:
        return actions.END
    given = loan_action.more_args(context)
    if not given:
        return await _ask_amount(update, context, view)
    actions.begin(context, NAME, view)
    state = await _take_amount(update, context, actor, given[0], ask_date=len(given) == 1)
    if state == State.DATE and len(given) == 2:
        return await _take_date(update, context, actor, given[1])
    return state


async def _ask_amount(update: Update, context: Context, view: LoanView) -> int:
    outstanding = actions.money(context, view.outstanding)
    text = texts.promise_ask_amount(view.loan_number, view.borrower_name, outstanding)
    return await loan_action.start(update, context, NAME, view, text, State.AMOUNT)


@actions.step(NAME)
async def amount_text(update: Update, context: Context, actor: Actor) -> int:
    """The promised amount typed."""
    return await _take_amount(update, context, actor, text_of(update), ask_date=True)


async def _take_amount(
    update: Update, context: Context, actor: Actor, text: str, ask_date: bool
) -> int:
    got = await actions.amount_owed(
        update,
        context,
        actor,
        text,
        code="promise_too_much",
        again=texts.PROMISE_ASK_AMOUNT_AGAIN,
        retry=State.AMOUNT,
    )
    if isinstance(got, int):
        return got
    user_data(context)[AMOUNT] = str(got[0])
    if ask_date:
        await actions.say(update, texts.PROMISE_ASK_DATE)
    return State.DATE


@actions.step(NAME)
async def date_text(update: Update, context: Context, actor: Actor) -> int:
    """The promised date typed: record the promise."""
    return await _take_date(update, context, actor, text_of(update))


async def _take_date(update: Update, context: Context, actor: Actor, text: str) -> int:
    today = actions.today_of(context)
    try:
        when = parse_date(text, today=today, future=True)
    except InvalidInput as err:
        return await loan_action.refusal(update, context, actor, err, (DATE_AGAIN,))
    arguments = {
        "actor": actor,
        "loan_number": user_data(context)[NUMBER],
        "amount": Decimal(user_data(context)[AMOUNT]),
        "promised_date": when,
        "today": today,
        "agency": agency_of(context),
    }
    return await loan_action.commit(update, context, actor, PROMISE, arguments, (DATE_AGAIN,))
