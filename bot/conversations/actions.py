"""What the loan-action conversations share: the loan a button or command names, stale
buttons, previews, and which conversation the scratch values belong to.

Every conversation clears user_data when it starts, so a conversation of ours finds its own
name under ACTIVE only while it is the newest one. When another started since, its steps
refuse the input (it was meant for the newer one) and end, instead of acting on it.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Awaitable, Callable, Collection, Coroutine
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session
from telegram import Update
from telegram.ext import ConversationHandler
from telegram.warnings import PTBUserWarning

from bot import keyboards, texts
from bot.context import Context, agency_of, answer_button, db, require_staff, settings_of
from bot.handlers.loans import show_card
from bot.keyboards import CB
from bot.updates import chat_of, query_of, user_data
from db import clock
from db.models import Role
from db.money import format_money
from db.services.access import Actor, require_role
from db.services.errors import Conflict, InvalidInput, ServiceError
from db.services.loans import add as loan_service
from db.services.loans.guards import check_owed
from db.services.loans.snapshots import LoanView
from db.validation import parse_amount

log = logging.getLogger(__name__)

END = ConversationHandler.END
ACTIVE = "act.conv"  # the conversation the scratch values below belong to
LOAN_ID = "act.loan_id"
NUMBER = "act.number"
VERSION = "act.version"
BORROWER = "act.borrower"

Step = Callable[[Update, Context, Actor], Awaitable[Any]]


def conversation(**kwargs: Any) -> ConversationHandler:
    """A ConversationHandler whose button steps are meant to be per chat, not per message."""
    with warnings.catch_warnings():
        # PTB warns that per_message=False does not track buttons per message: intended,
        # a step's buttons carry the loan id and each step checks it.
        warnings.filterwarnings("ignore", message=".*per_message=False", category=PTBUserWarning)
        return ConversationHandler(persistent=True, allow_reentry=True, **kwargs)


def begin(context: Context, name: str, view: LoanView) -> None:
    """Start conversation name on the loan of view: fresh scratch values."""
    user_data(context).clear()
    user_data(context).update(
        {
            ACTIVE: name,
            LOAN_ID: view.id,
            NUMBER: view.loan_number,
            VERSION: view.version,
            BORROWER: view.borrower_name,
        }
    )


def finish(context: Context) -> int:
    """End the conversation and forget its scratch values."""
    user_data(context).clear()
    return END


def step(name: str) -> Callable[[Step], Callable[[Update, Context], Coroutine[Any, Any, Any]]]:
    """A step of conversation name, for logged-in staff, refused once it was superseded."""

    def wrap(callback: Step) -> Callable[[Update, Context], Coroutine[Any, Any, Any]]:
        @functools.wraps(callback)
        async def run(update: Update, context: Context, actor: Actor) -> Any:
            if user_data(context).get(ACTIVE) != name:
                return await _superseded(update)
            return await callback(update, context, actor)

        return require_staff(run)

    return wrap


async def _superseded(update: Update) -> int:
    # The scratch values belong to the newer conversation: leave them alone.
    if update.callback_query is not None:
        await answer_button(update, texts.OLD_BUTTON)
    else:
        await say(update, texts.ACTION_SUPERSEDED)
    return END


async def say(update: Update, text: str, **kwargs: Any) -> None:
    """Send text to the chat (a pressed button must have been answered already)."""
    await chat_of(update).send_message(text, **kwargs)


def today_of(context: Context) -> date:
    """Today in the agency's time zone."""
    return clock.today(settings_of(context).tz)


def money(context: Context, amount: Decimal) -> str:
    """An amount in the agency's currency, e.g. ₹1,500.00."""
    return format_money(amount, agency_of(context))


def my_button(update: Update, context: Context, prefix: CB, count: int = 2) -> list[int] | None:
    """The ids of a step's button when it is about this conversation's loan, else None."""
    ids = keyboards.parse_ids(query_of(update).data, prefix, count)
    if ids is None or ids[0] != user_data(context).get(LOAN_ID):
        return None
    return ids


async def pressed(update: Update, context: Context, prefix: CB, count: int = 2) -> list[int] | None:
    """The ids of a pressed button of this conversation's loan (answered), else None."""
    ids = my_button(update, context, prefix, count)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return None
    await query_of(update).answer()
    return ids


async def chosen(
    update: Update, context: Context, prefix: CB, allowed: Collection[str]
) -> str | None:
    """The value of a pressed choice of this conversation's loan (answered), else None."""
    parts = keyboards.parse_fields(query_of(update).data, prefix, 2)
    if parts is None or parts[0] != str(user_data(context).get(LOAN_ID)) or parts[1] not in allowed:
        await answer_button(update, texts.BAD_BUTTON)
        return None
    await query_of(update).answer()
    return parts[1]


async def allowed(update: Update, actor: Actor, role: Role, what: str) -> bool:
    """Whether actor has role; if not, say the service's refusal (a forged button too)."""
    try:
        require_role(actor, role, what)
    except ServiceError as err:
        if update.callback_query is not None:
            await answer_button(update, err.message)
        else:
            await say(update, texts.service_error(err))
        return False
    return True


async def loan_of_button(
    update: Update, context: Context, actor: Actor, prefix: CB
) -> LoanView | None:
    """The loan a card button names, as shown; otherwise answer (or show the card) and None."""
    ids = keyboards.parse_ids(query_of(update).data, prefix, 2)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return None
    try:
        view = await db(
            context,
            loan_service.get_loan_by_id,
            actor=actor,
            loan_id=ids[0],
            today=today_of(context),
        )
    except ServiceError as err:
        await answer_button(update, err.message)
        return None
    await query_of(update).answer()
    if view.version != ids[1]:
        await show_card(
            query_of(update), context, actor, view.id, note=texts.LOAN_CHANGED, edit=True
        )
        return None
    return view


async def loan_of_number(
    update: Update, context: Context, actor: Actor, number: str
) -> LoanView | None:
    """The loan a command names; otherwise say why not and return None."""
    try:
        return await db(
            context, loan_service.get_loan, actor=actor, loan_number=number, today=today_of(context)
        )
    except ServiceError as err:
        await say(update, texts.service_error(err))
        return None


async def amount_owed(
    update: Update, context: Context, actor: Actor, text: str, *, code: str, again: str, retry: int
) -> tuple[Decimal, Decimal] | int:
    """The amount typed and what would be left owing; else the state to return (retry or END)."""
    agency = agency_of(context)
    try:
        amount = parse_amount(text, max_amount=settings_of(context).max_amount, agency=agency)
        balance = await db(
            context,
            check_owed,
            actor=actor,
            loan_number=user_data(context)[NUMBER],
            amount=amount,
            code=code,
            agency=agency,
        )
    except InvalidInput as err:
        await say(update, texts.action_again(err.message, again))
        return retry
    except ServiceError as err:
        await say(update, texts.service_error(err))
        return finish(context)
    return amount, balance


async def refused(update: Update, context: Context, actor: Actor, err: ServiceError) -> int:
    """A service refused the final step: a stale loan shows its fresh card, else the reason."""
    loan_id = user_data(context).get(LOAN_ID)
    if isinstance(err, Conflict) and err.code == "stale" and loan_id:
        query = query_of(update)
        await show_card(
            query or update,
            context,
            actor,
            loan_id,
            note=texts.LOAN_CHANGED,
            edit=query is not None,
        )
    else:
        await say(update, texts.service_error(err))
    return finish(context)


async def _cancel(update: Update, context: Context, actor: Actor) -> int:
    query = query_of(update)
    await query.answer()
    await query.edit_message_text(texts.CANCELLED)
    return finish(context)


async def _use_buttons(update: Update, context: Context, actor: Actor) -> None:
    await say(update, texts.USE_BUTTONS)  # None: the conversation stays in its step


def cancel_step(name: str) -> Callable[[Update, Context], Coroutine[Any, Any, Any]]:
    """The Cancel button of conversation name: nothing changes and the buttons go."""
    return step(name)(_cancel)


def buttons_only(name: str) -> Callable[[Update, Context], Coroutine[Any, Any, Any]]:
    """Text typed where conversation name expects a button: say so, stay in the step."""
    return step(name)(_use_buttons)


def dry_run(session: Session, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """fn(session, **kwargs) in a savepoint that is rolled back: its answer, nothing written."""
    savepoint = session.begin_nested()
    try:
        return fn(session, **kwargs)
    finally:
        savepoint.rollback()
