"""/promise and the card's Promise button: how much the borrower promised, and by when."""

from __future__ import annotations

import logging
from decimal import Decimal
from enum import IntEnum

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler

from bot import keyboards, texts, views
from bot.context import Context, agency_of, db, require_staff
from bot.conversations import TEXT_INPUT, actions, cancel_fallback
from bot.conversations.actions import NUMBER
from bot.handlers.loans import show_card
from bot.keyboards import CB
from db.services.access import Actor
from db.services.collection import promises
from db.services.errors import InvalidInput, ServiceError
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
    return actions.conversation(
        entry_points=[
            CommandHandler("promise", promise_command),
            CallbackQueryHandler(promise_button, pattern=keyboards.pattern(CB.LOAN_PROMISE)),
        ],
        states={
            State.AMOUNT: [MessageHandler(TEXT_INPUT, amount_text)],
            State.DATE: [MessageHandler(TEXT_INPUT, date_text)],
        },
        fallbacks=[cancel_fallback()],
        name="promise",
    )


@require_staff
async def promise_command(update: Update, context: Context, actor: Actor) -> int:
    """/promise <number> [amount [date]]: ask whatever is missing."""
    args = context.args or []
    if not args or len(args) > 3:
        await actions.say(update, texts.PROMISE_USAGE)
        return actions.END
    view = await actions.loan_of_number(update, context, actor, args[0])
    if view is None:
        return actions.END
    if len(args) == 1:
        return await _ask_amount(update, context, view)
    actions.begin(context, NAME, view)
    state = await _take_amount(update, context, actor, args[1], ask_date=len(args) == 2)
    if state == State.DATE and len(args) == 3:
        return await _take_date(update, context, actor, args[2])
    return state


@require_staff
async def promise_button(update: Update, context: Context, actor: Actor) -> int:
    """Promise on a card: ask the amount (a stale card is shown afresh instead)."""
    view = await actions.loan_of_button(update, context, actor, CB.LOAN_PROMISE)
    if view is None:
        return actions.END
    return await _ask_amount(update, context, view)


async def _ask_amount(update: Update, context: Context, view: LoanView) -> int:
    actions.begin(context, NAME, view)
    outstanding = actions.money(context, view.outstanding)
    await actions.say(
        update, texts.promise_ask_amount(view.loan_number, view.borrower_name, outstanding)
    )
    return State.AMOUNT


@actions.step(NAME)
async def amount_text(update: Update, context: Context, actor: Actor) -> int:
    """The promised amount typed."""
    return await _take_amount(update, context, actor, update.message.text, ask_date=True)


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
    context.user_data[AMOUNT] = str(got[0])
    if ask_date:
        await actions.say(update, texts.PROMISE_ASK_DATE)
    return State.DATE


@actions.step(NAME)
async def date_text(update: Update, context: Context, actor: Actor) -> int:
    """The promised date typed: record the promise."""
    return await _take_date(update, context, actor, update.message.text)


async def _take_date(update: Update, context: Context, actor: Actor, text: str) -> int:
    today = actions.today_of(context)
    data = context.user_data
    try:
        when = parse_date(text, today=today, future=True)
        made = await db(
            context,
            promises.record_promise,
            actor=actor,
            loan_number=data[NUMBER],
            amount=Decimal(data[AMOUNT]),
            promised_date=when,
            today=today,
            agency=agency_of(context),
        )
    except InvalidInput as err:
        await actions.say(update, texts.action_again(err.message, texts.PROMISE_ASK_DATE))
        return State.DATE
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    loan_id = data[actions.LOAN_ID]
    actions.finish(context)
    note = texts.promise_done(actions.money(context, made.amount), views.day(made.promised_date))
    await actions.say(update, note)
    await show_card(update, context, actor, loan_id)
    return actions.END
