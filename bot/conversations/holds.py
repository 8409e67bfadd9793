"""/dispute, /hardship and /resolve (and the card's buttons): collection paused and resumed.

Dispute asks a note, hardship the day it ends and a note; both are previewed with the
service and confirmed. Resolve (managers and admins) shows the open hold with its outcomes
as buttons and asks the reason, which makes the change (db/services/loans/holds.py).
"""

from __future__ import annotations

import logging
from datetime import date
from enum import IntEnum
from typing import Any

from telegram import Update
from telegram.ext import CallbackQueryHandler, ConversationHandler, MessageHandler

from bot import keyboards, texts
from bot.context import Context, require_staff
from bot.conversations import TEXT_INPUT, actions, loan_action
from bot.conversations.actions import NUMBER, VERSION
from bot.conversations.loan_action import Ask, Change, Confirm, Entry
from bot.keyboards import CB
from bot.updates import query_of, text_of, user_data
from db.models import HoldKind, HoldOutcome, Role
from db.services.access import Actor
from db.services.errors import InvalidInput, ServiceError
from db.services.loans import holds
from db.services.loans.snapshots import LoanView
from db.validation import parse_date

log = logging.getLogger(__name__)

NAME = "hold"
KIND = "act.hold_kind"
UNTIL = "act.until"
NOTE = "act.note"
OUTCOME = "act.outcome"


class State(IntEnum):
    NOTE = 1
    CONFIRM = 2
    UNTIL = 3
    OUTCOME = 4
    REASON = 5


def build_handler() -> ConversationHandler:
    """The dispute / hardship / resolve conversation."""
    entries = loan_action.entry_points
    return loan_action.conversation(
        NAME,
        entry_points=[
            *entries(CB.LOAN_DISPUTE, dispute_entry, "dispute"),
            *entries(CB.LOAN_HARDSHIP, hardship_entry, "hardship"),
            *entries(CB.LOAN_RESOLVE, resolve_entry, "resolve"),
        ],
        states={
            State.UNTIL: [MessageHandler(TEXT_INPUT, until_text)],
            State.NOTE: [MessageHandler(TEXT_INPUT, note_text)],
            State.CONFIRM: loan_action.confirm_step(NAME, hold_confirmed, CB.HOLD_CONFIRM),
            State.OUTCOME: loan_action.buttons_only(
                NAME,
                [CallbackQueryHandler(outcome, pattern=keyboards.pattern(CB.RESOLVE_OUTCOME))],
            ),
            State.REASON: [MessageHandler(TEXT_INPUT, reason_text)],
        },
    )


# --- opening a dispute or a hardship pause ------------------------------------------------


def _open_arguments(context: Context, actor: Actor, version: int) -> dict[str, Any]:
    data = user_data(context)
    until = data.get(UNTIL)
    return {
        "actor": actor,
        "loan_number": data[NUMBER],
        "kind": HoldKind(data[KIND]),
        "note": data[NOTE],
        "today": actions.today_of(context),
        "until": date.fromisoformat(until) if until else None,
        "expected_version": version,
    }


def _opened(context: Context, done: holds.HoldView) -> tuple[str, int]:
    template = texts.DISPUTE_DONE if done.kind is HoldKind.DISPUTE else texts.HARDSHIP_DONE
    text = texts.loan_done(template, done.loan_number)
    if done.withdrawn:
        text += texts.HOLD_WITHDRAWN.format(count=done.withdrawn)
    return text, done.loan_id


DISPUTE_ENTRY = Entry(button=CB.LOAN_DISPUTE, usage=texts.DISPUTE_USAGE)
HARDSHIP_ENTRY = Entry(button=CB.LOAN_HARDSHIP, usage=texts.HARDSHIP_USAGE)
OPEN = Confirm(
    CB.HOLD_CONFIRM, texts.BTN_CONFIRM, Change(holds.open_hold, _opened), _open_arguments
)


async def _begin(
    update: Update, context: Context, view: LoanView, kind: HoldKind, text: str, state: State
) -> int:
    if view.hold is not None:
        await actions.say(update, texts.loan_done(texts.HOLD_ALREADY, view.loan_number))
        return actions.END
    actions.begin(context, NAME, view)
    user_data(context)[KIND] = kind.value
    user_data(context)[UNTIL] = None
    await actions.say(update, text)
    return state


@require_staff
async def dispute_entry(update: Update, context: Context, actor: Actor) -> int:
    """/dispute <number> or Dispute on a card: ask what is disputed."""
    view = await loan_action.load(update, context, actor, DISPUTE_ENTRY)
    if view is None:
        return actions.END
    text = texts.archive_ask(texts.DISPUTE_ASK, view.loan_number, view.borrower_name)
    return await _begin(update, context, view, HoldKind.DISPUTE, text, State.NOTE)


@require_staff
async def hardship_entry(update: Update, context: Context, actor: Actor) -> int:
    """/hardship <number> or Hardship on a card: ask until which day."""
    view = await loan_action.load(update, context, actor, HARDSHIP_ENTRY)
    if view is None:
        return actions.END
    text = texts.archive_ask(texts.HARDSHIP_ASK, view.loan_number, view.borrower_name)
    return await _begin(update, context, view, HoldKind.HARDSHIP, text, State.UNTIL)


@actions.step(NAME)
async def until_text(update: Update, context: Context, actor: Actor) -> int:
    """The day the pause ends: a future date, or asked again."""
    try:
        until = parse_date(text_of(update), today=actions.today_of(context), future=True)
    except InvalidInput as err:
        await actions.say(update, texts.action_again(err.message, texts.HARDSHIP_ASK_UNTIL_AGAIN))
        return State.UNTIL
    user_data(context)[UNTIL] = until.isoformat()
    await actions.say(update, texts.HARDSHIP_ASK_NOTE)
    return State.NOTE


@actions.step(NAME)
async def note_text(update: Update, context: Context, actor: Actor) -> int:
    """The note typed: check it with the service (nothing written), then confirm."""
    data = user_data(context)
    data[NOTE] = text_of(update)
    note_again = (
        texts.DISPUTE_ASK_AGAIN if data[KIND] == HoldKind.DISPUTE else texts.HARDSHIP_ASK_NOTE
    )
    asks = (
        Ask(texts.HARDSHIP_ASK_UNTIL_AGAIN, State.UNTIL, _about_the_date),
        Ask(note_again, State.NOTE),
    )
    arguments = _open_arguments(context, actor, data[VERSION])
    got = await loan_action.preview(update, context, actor, holds.open_hold, arguments, asks)
    if isinstance(got, int):
        return got
    dispute = got.kind is HoldKind.DISPUTE
    template = texts.DISPUTE_CONFIRM if dispute else texts.HARDSHIP_CONFIRM
    until = "" if got.until is None else f"{got.until:%d %b %Y}"
    await loan_action.ask_confirm(
        update, context, OPEN, texts.hold_confirm(template, got.loan_number, got.note, until)
    )
    return State.CONFIRM


def _about_the_date(err: ServiceError) -> bool:
    return isinstance(err, InvalidInput) and (err.code or "").startswith("date")


@actions.step(NAME)
async def hold_confirmed(update: Update, context: Context, actor: Actor) -> int | None:
    """Confirm pressed: the loan is disputed or paused; its fresh card follows."""
    return await loan_action.confirmed(update, context, actor, OPEN)


# --- resolving (managers and admins) --------------------------------------------------------

RESOLVE_ENTRY = Entry(
    button=CB.LOAN_RESOLVE, usage=texts.RESOLVE_USAGE, role=Role.MANAGER, what="resolve disputes"
)


def _resolved(context: Context, done: holds.HoldView) -> tuple[str, int]:
    chosen = done.outcome.value if done.outcome else ""
    outcome = texts.RESOLVE_OUTCOMES[done.kind.value].get(chosen, chosen)
    text = texts.RESOLVE_DONE.format(number=texts.esc(done.loan_number), outcome=outcome)
    if done.outcome is HoldOutcome.UPHELD:
        payment = done.kind is HoldKind.PAYMENT
        text += texts.RESOLVE_PAYMENT_NEXT if payment else texts.RESOLVE_UPHELD_NEXT
    return text, done.loan_id


RESOLVE = Change(holds.resolve_hold, _resolved)
REASON_AGAIN = Ask(texts.RESOLVE_ASK_REASON, State.REASON)


@require_staff
async def resolve_entry(update: Update, context: Context, actor: Actor) -> int:
    """/resolve <number> or Resolve on a card: the open hold and its outcomes as buttons."""
    view = await loan_action.load(update, context, actor, RESOLVE_ENTRY)
    if view is None:
        return actions.END
    if view.hold is None:
        await actions.say(update, texts.loan_done(texts.RESOLVE_NOTHING, view.loan_number))
        return actions.END
    kind = view.hold.kind.value
    actions.begin(context, NAME, view)
    user_data(context)[KIND] = kind
    choices = list(texts.RESOLVE_OUTCOMES[kind].items())
    markup = keyboards.action_choices(CB.RESOLVE_OUTCOME, view.id, choices)
    text = texts.resolve_ask(view.loan_number, kind, view.hold.note)
    await actions.say(update, text, reply_markup=markup)
    return State.OUTCOME


@actions.step(NAME)
async def outcome(update: Update, context: Context, actor: Actor) -> int | None:
    """An outcome pressed: ask the reason."""
    allowed = set(texts.RESOLVE_OUTCOMES[user_data(context)[KIND]])
    value = await actions.chosen(update, context, CB.RESOLVE_OUTCOME, allowed)
    if value is None:
        return None
    user_data(context)[OUTCOME] = value
    await query_of(update).edit_message_text(texts.RESOLVE_ASK_REASON)
    return State.REASON


@actions.step(NAME)
async def reason_text(update: Update, context: Context, actor: Actor) -> int:
    """The reason typed: resolve; the result and the fresh card follow."""
    data = user_data(context)
    arguments = {
        "actor": actor,
        "loan_number": data[NUMBER],
        "outcome": HoldOutcome(data[OUTCOME]),
        "reason": text_of(update),
        "today": actions.today_of(context),
        "kind": HoldKind(data[KIND]),
    }
    return await loan_action.commit(
        update, context, actor, RESOLVE, arguments, (REASON_AGAIN,), in_place=False
    )
