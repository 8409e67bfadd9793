"""/pay and the card's Pay button: amount, a summary to confirm, then the payment.

The payment and the borrower's notice are written in one transaction (payments.pay_and_notify).
Confirm carries the loan's version: a loan that changed since the summary is not paid but
shown afresh, and a second press finds the conversation over (one payment).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from enum import IntEnum

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler

from bot import keyboards, texts
from bot.context import Context, db, require_staff, settings_of
from bot.conversations import TEXT_INPUT, actions, cancel_fallback
from bot.conversations.actions import LOAN_ID, NUMBER, VERSION
from bot.handlers.loans import show_card
from bot.keyboards import CB
from db.services.access import Actor
from db.services.collection import payments
from db.services.errors import ServiceError
from db.services.loans.snapshots import LoanView

log = logging.getLogger(__name__)

NAME = "pay"
AMOUNT = "act.amount"  # str(Decimal), as persistence keeps JSON only


class State(IntEnum):
    AMOUNT = 1
    CONFIRM = 2


def build_handler() -> ConversationHandler:
    """The payment conversation."""
    return actions.conversation(
        entry_points=[
            CommandHandler("pay", pay_command),
            CallbackQueryHandler(pay_button, pattern=keyboards.pattern(CB.LOAN_PAY)),
        ],
        states={
            State.AMOUNT: [MessageHandler(TEXT_INPUT, amount_text)],
            State.CONFIRM: [
                CallbackQueryHandler(confirm, pattern=keyboards.pattern(CB.PAY_CONFIRM)),
                CallbackQueryHandler(
                    actions.cancel_step(NAME), pattern=keyboards.pattern(CB.ACTION_CANCEL)
                ),
                MessageHandler(TEXT_INPUT, actions.buttons_only(NAME)),
            ],
        },
        fallbacks=[cancel_fallback()],
        name="pay",
    )


@require_staff
async def pay_command(update: Update, context: Context, actor: Actor) -> int:
    """/pay <number> [amount]: the summary at once, or the amount question first."""
    args = context.args or []
    if not args:
        await actions.say(update, texts.PAY_USAGE)
        return actions.END
    view = await actions.loan_of_number(update, context, actor, args[0])
    if view is None:
        return actions.END
    if len(args) == 1:
        return await _ask_amount(update, context, view)
    actions.begin(context, NAME, view)
    return await _take_amount(update, context, actor, " ".join(args[1:]))


@require_staff
async def pay_button(update: Update, context: Context, actor: Actor) -> int:
    """Pay on a card: ask the amount (a stale card is shown afresh instead)."""
    view = await actions.loan_of_button(update, context, actor, CB.LOAN_PAY)
    if view is None:
        return actions.END
    return await _ask_amount(update, context, view)


async def _ask_amount(update: Update, context: Context, view: LoanView) -> int:
    actions.begin(context, NAME, view)
    outstanding = actions.money(context, view.outstanding)
    await actions.say(update, texts.pay_ask(view.loan_number, view.borrower_name, outstanding))
    return State.AMOUNT


@actions.step(NAME)
async def amount_text(update: Update, context: Context, actor: Actor) -> int:
    """The amount typed: check it against what is owed, then the summary."""
    return await _take_amount(update, context, actor, update.message.text)


async def _take_amount(update: Update, context: Context, actor: Actor, text: str) -> int:
    got = await actions.amount_owed(
        update, context, actor, text, code="overpay", again=texts.PAY_ASK_AGAIN, retry=State.AMOUNT
    )
    if isinstance(got, int):
        return got
    amount, balance = got
    data = context.user_data
    data[AMOUNT] = str(amount)
    text = texts.pay_confirm(
        actions.money(context, amount),
        data[NUMBER],
        data[actions.BORROWER],
        actions.money(context, balance),
        closes=balance == 0,
    )
    markup = keyboards.action_confirm(
        CB.PAY_CONFIRM, data[LOAN_ID], data[VERSION], texts.BTN_CONFIRM, texts.BTN_CANCEL
    )
    await actions.say(update, text, reply_markup=markup)
    return State.CONFIRM


@actions.step(NAME)
async def confirm(update: Update, context: Context, actor: Actor) -> int | None:
    """Confirm pressed: record the payment (once), say the balance, show the fresh card."""
    ids = await actions.pressed(update, context, CB.PAY_CONFIRM)
    if ids is None:
        return None
    query = update.callback_query
    settings, data = settings_of(context), context.user_data
    try:
        result = await db(
            context,
            payments.pay_and_notify,
            actor=actor,
            loan_number=data[NUMBER],
            amount=Decimal(data[AMOUNT]),
            expected_version=ids[1],
            today=actions.today_of(context),
            settings=settings,
        )
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    actions.finish(context)
    await query.edit_message_text(
        texts.pay_done(
            actions.money(context, result.amount),
            actions.money(context, result.outstanding),
            result.loan_number,
            result.closed,
        )
    )
    await show_card(update, context, actor, result.loan.id)
    return actions.END
