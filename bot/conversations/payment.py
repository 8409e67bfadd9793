"""/pay and the card's Pay button: amount, a summary to confirm, then the payment.

The payment and the borrower's notice are written in one transaction (payments.pay_and_notify).
Confirm carries the loan's version: a loan that changed since the summary is not paid but
shown afresh, and a second press finds the conversation over (one payment).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from enum import IntEnum
from typing import Any

from telegram import Update
from telegram.ext import ConversationHandler, MessageHandler

from bot import texts
from bot.context import Context, require_staff, settings_of
from bot.conversations import TEXT_INPUT, actions, loan_action
from bot.conversations.actions import NUMBER
from bot.conversations.loan_action import Change, Confirm, Entry
from bot.keyboards import CB
from bot.updates import text_of, user_data
from db.services.access import Actor
from db.services.collection import payments
from db.services.collection.payments import PaymentResult
from db.services.loans.snapshots import LoanView

log = logging.getLogger(__name__)

NAME = "pay"
AMOUNT = "act.amount"  # str(Decimal), as persistence keeps JSON only


class State(IntEnum):
    AMOUNT = 1
    CONFIRM = 2


def build_handler() -> ConversationHandler:
    """The payment conversation."""
    return loan_action.conversation(
        "pay",
        entry_points=loan_action.entry_points(CB.LOAN_PAY, pay_entry, "pay"),
        states={
            State.AMOUNT: [MessageHandler(TEXT_INPUT, amount_text)],
            State.CONFIRM: loan_action.confirm_step(NAME, confirm, CB.PAY_CONFIRM),
        },
    )


def _pay_arguments(context: Context, actor: Actor, version: int) -> dict[str, Any]:
    data = user_data(context)
    return {
        "actor": actor,
        "loan_number": data[NUMBER],
        "amount": Decimal(data[AMOUNT]),
        "expected_version": version,
        "today": actions.today_of(context),
        "settings": settings_of(context),
    }


def _paid(context: Context, result: PaymentResult) -> tuple[str, int]:
    text = texts.pay_done(
        actions.money(context, result.amount),
        actions.money(context, result.outstanding),
        result.loan_number,
        result.closed,
    )
    return text, result.loan.id


PAY_ENTRY = Entry(button=CB.LOAN_PAY, usage=texts.PAY_USAGE, most=None)
PAY = Confirm(
    CB.PAY_CONFIRM, texts.BTN_CONFIRM, Change(payments.pay_and_notify, _paid), _pay_arguments
)


@require_staff
async def pay_entry(update: Update, context: Context, actor: Actor) -> int:
    """/pay <number> [amount] or Pay on a card: the summary at once, or the amount first."""
    view = await loan_action.load(update, context, actor, PAY_ENTRY)
    if view is None:
        return actions.END
    amount = loan_action.more_args(context)
    if not amount:
        return await _ask_amount(update, context, view)
    actions.begin(context, NAME, view)
    return await _take_amount(update, context, actor, " ".join(amount))


async def _ask_amount(update: Update, context: Context, view: LoanView) -> int:
    outstanding = actions.money(context, view.outstanding)
    text = texts.pay_ask(view.loan_number, view.borrower_name, outstanding)
    return await loan_action.start(update, context, NAME, view, text, State.AMOUNT)


@actions.step(NAME)
async def amount_text(update: Update, context: Context, actor: Actor) -> int:
    """The amount typed: check it against what is owed, then the summary."""
    return await _take_amount(update, context, actor, text_of(update))


async def _take_amount(update: Update, context: Context, actor: Actor, text: str) -> int:
    got = await actions.amount_owed(
        update, context, actor, text, code="overpay", again=texts.PAY_ASK_AGAIN, retry=State.AMOUNT
    )
    if isinstance(got, int):
        return got
    amount, balance = got
    data = user_data(context)
    data[AMOUNT] = str(amount)
    text = texts.pay_confirm(
        actions.money(context, amount),
        data[NUMBER],
        data[actions.BORROWER],
        actions.money(context, balance),
        closes=balance == 0,
    )
    await loan_action.ask_confirm(update, context, PAY, text)
    return State.CONFIRM


@actions.step(NAME)
async def confirm(update: Update, context: Context, actor: Actor) -> int | None:
    """Confirm pressed: record the payment (once), say the balance, show the fresh card."""
    return await loan_action.confirmed(update, context, actor, PAY)
