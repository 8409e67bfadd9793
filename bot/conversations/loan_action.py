"""The skeleton every loan action follows: close, write off, archive, restore, pay, promise,
contact and edit.

entry (a command with a loan number, or the card's button) → load (the loan as this actor
may see it, or the refusal) → the questions, each answer previewed with the service itself
(nothing written) → Confirm / Cancel → the service call in one transaction → its result,
then the loan's fresh card. Promise and contact ask no confirmation: their last answer
makes the change. A refusal becomes a short text and changes nothing: the question again
when another answer can cure it (an Ask), else the reason (or, for a stale loan, its fresh
card) and the end.

Each action declares what differs (its Entry, Change, Confirm and Asks, with texts from
bot/texts.py and buttons from bot/keyboards.py) and keeps its own named callbacks, which
call the steps below; its states stay an IntEnum in its module. The lower-level pieces
(scratch values, stale buttons, dry_run) are in actions.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from telegram import Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)

from bot import keyboards, texts
from bot.context import Context, db
from bot.conversations import TEXT_INPUT, actions, cancel_fallback
from bot.conversations.actions import LOAN_ID, VERSION
from bot.handlers.loans import show_card
from bot.keyboards import CB
from bot.updates import user_data
from db.models import Role
from db.services.access import Actor
from db.services.errors import InvalidInput, ServiceError
from db.services.loans.snapshots import LoanView

log = logging.getLogger(__name__)

Callback = Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class Entry:
    """How an action starts: its command's usage text, the card's button, who may use it."""

    button: CB
    usage: str = ""  # said when the command's arguments do not fit
    most: int | None = 1  # how many arguments the command takes at most (the loan number first)
    role: Role | None = None  # the least role, checked before the loan is loaded
    what: str = ""  # the refusal's words for a lower role ("archive loans")


@dataclass(frozen=True)
class Change:
    """The service call that makes the change, and what is said once it is made."""

    service: Callable[..., Any]
    # (context, the service's answer) -> (the result to say, the loan whose card follows)
    outcome: Callable[[Context, Any], tuple[str, int]]


@dataclass(frozen=True)
class Confirm:
    """A confirmation: its button, and the change its press makes."""

    prefix: CB
    label: str
    change: Change
    # (context, actor, the version on the pressed button) -> the service's keyword arguments
    arguments: Callable[[Context, Actor, int], dict[str, Any]]


def invalid_input(err: ServiceError) -> bool:
    """Whether the service found the answer itself wrong (too short, badly formed, ...)."""
    return isinstance(err, InvalidInput)


@dataclass(frozen=True)
class Ask:
    """A question asked again, after the service's reason, when it refuses an answer."""

    again: str
    state: int
    when: Callable[[ServiceError], bool] = invalid_input  # the refusals another answer cures


# --- the handler ---------------------------------------------------------------------------


def conversation(
    name: str, entry_points: list[BaseHandler], states: dict[object, list[BaseHandler]]
) -> ConversationHandler:
    """A loan action's ConversationHandler (persistent, re-entrant, ended by /cancel)."""
    return actions.conversation(
        entry_points=entry_points, states=states, fallbacks=[cancel_fallback()], name=name
    )


def entry_points(
    button: CB, on_entry: Callback, commands: str | Sequence[str] = ()
) -> list[BaseHandler]:
    """The commands and the card's button that start an action, all to one callback."""
    handlers: list[BaseHandler] = []
    if commands:
        handlers.append(CommandHandler(commands, on_entry))
    handlers.append(CallbackQueryHandler(on_entry, pattern=keyboards.pattern(button)))
    return handlers


def buttons_only(name: str, handlers: list[BaseHandler]) -> list[BaseHandler]:
    """A step that waits for a button: typed text is answered "use the buttons"."""
    return [*handlers, MessageHandler(TEXT_INPUT, actions.buttons_only(name))]


def confirm_step(name: str, on_confirm: Callback, prefix: CB) -> list[BaseHandler]:
    """The handlers of a Confirm / Cancel step."""
    return buttons_only(
        name,
        [
            CallbackQueryHandler(on_confirm, pattern=keyboards.pattern(prefix)),
            CallbackQueryHandler(
                actions.cancel_step(name), pattern=keyboards.pattern(CB.ACTION_CANCEL)
            ),
        ],
    )


# --- the steps -----------------------------------------------------------------------------


async def load(update: Update, context: Context, actor: Actor, entry: Entry) -> LoanView | None:
    """The loan the command or the card's button names; otherwise say why not and None."""
    if entry.role is not None and not await actions.allowed(update, actor, entry.role, entry.what):
        return None
    if update.callback_query is not None:
        return await actions.loan_of_button(update, context, actor, entry.button)
    args = context.args or []
    if not args or (entry.most is not None and len(args) > entry.most):
        await actions.say(update, entry.usage)
        return None
    return await actions.loan_of_number(update, context, actor, args[0])


def more_args(context: Context) -> list[str]:
    """The command's arguments after the loan number (none after a button)."""
    return (context.args or [])[1:]


async def start(
    update: Update, context: Context, name: str, view: LoanView, text: str, state: int, **kw: Any
) -> int:
    """Begin conversation name on the loan of view with its first question."""
    actions.begin(context, name, view)
    await actions.say(update, text, **kw)
    return state


async def preview(
    update: Update,
    context: Context,
    actor: Actor,
    service: Callable[..., Any],
    arguments: dict[str, Any],
    asks: Sequence[Ask] = (),
) -> Any:
    """The service's answer with nothing written (actions.dry_run).

    A refusal returns the state to go to instead (an int): the question again, or END.
    """
    try:
        return await db(context, actions.dry_run, fn=service, **arguments)
    except ServiceError as err:
        return await refusal(update, context, actor, err, asks)


async def refusal(
    update: Update, context: Context, actor: Actor, err: ServiceError, asks: Sequence[Ask] = ()
) -> int:
    """Ask again when another answer can cure err (the first ask that fits); else say why, end."""
    for ask in asks:
        if ask.when(err):
            await actions.say(update, texts.action_again(err.message, ask.again))
            return ask.state
    return await actions.refused(update, context, actor, err)


async def ask_confirm(update: Update, context: Context, confirm: Confirm, text: str) -> None:
    """Send text with the Confirm / Cancel buttons of this conversation's loan."""
    data = user_data(context)
    markup = keyboards.action_confirm(
        confirm.prefix, data[LOAN_ID], data[VERSION], confirm.label, texts.BTN_CANCEL
    )
    await actions.say(update, text, reply_markup=markup)


async def confirmed(update: Update, context: Context, actor: Actor, confirm: Confirm) -> int | None:
    """Confirm pressed: make the change; None (stay) for a button of another loan."""
    ids = await actions.pressed(update, context, confirm.prefix)
    if ids is None:
        return None
    arguments = confirm.arguments(context, actor, ids[1])
    return await commit(update, context, actor, confirm.change, arguments)


async def commit(
    update: Update,
    context: Context,
    actor: Actor,
    change: Change,
    arguments: dict[str, Any],
    asks: Sequence[Ask] = (),
    in_place: bool = True,
) -> int:
    """The change in one transaction, then its result and the loan's fresh card.

    After a pressed button the result replaces the question (unless not in_place); after a
    typed answer it is a new message.
    """
    try:
        result = await db(context, change.service, **arguments)
    except ServiceError as err:
        return await refusal(update, context, actor, err, asks)
    text, loan_id = change.outcome(context, result)
    actions.finish(context)
    if in_place and update.callback_query is not None:
        await update.callback_query.edit_message_text(text)
    else:
        await actions.say(update, text)
    await show_card(update, context, actor, loan_id)
    return actions.END
