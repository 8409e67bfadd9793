"""/contact and the card's Contact button: channel, outcome, an optional note."""

from __future__ import annotations

import logging
from enum import IntEnum, StrEnum
from typing import Any

from telegram import Update
from telegram.ext import CallbackQueryHandler, ConversationHandler, MessageHandler

from bot import keyboards, texts
from bot.context import Context, require_staff
from bot.conversations import TEXT_INPUT, actions, loan_action
from bot.conversations.actions import BORROWER, LOAN_ID, NUMBER
from bot.conversations.loan_action import Ask, Callback, Change, Entry
from bot.keyboards import CB
from bot.updates import query_of, text_of, user_data
from db.models import ContactChannel, ContactOutcome
from db.services.access import Actor
from db.services.collection import promises

log = logging.getLogger(__name__)

NAME = "contact"
CHANNEL = "act.channel"
OUTCOME = "act.outcome"


class State(IntEnum):
    CHANNEL = 1
    OUTCOME = 2
    NOTE = 3


def build_handler() -> ConversationHandler:
    """The contact conversation."""
    return loan_action.conversation(
        "contact",
        entry_points=loan_action.entry_points(CB.LOAN_CONTACT, contact_entry, "contact"),
        states={
            State.CHANNEL: loan_action.buttons_only(NAME, [_on(CB.CONTACT_CHANNEL, channel)]),
            State.OUTCOME: loan_action.buttons_only(NAME, [_on(CB.CONTACT_OUTCOME, outcome)]),
            State.NOTE: [_on(CB.CONTACT_SKIP, skip_note), MessageHandler(TEXT_INPUT, note_text)],
        },
    )


def _on(prefix: CB, callback: Callback) -> CallbackQueryHandler:
    return CallbackQueryHandler(callback, pattern=keyboards.pattern(prefix))


def _choices(kind: type[StrEnum], labels: dict[str, str]) -> list[tuple[str, str]]:
    """(value, label) of each member of kind, for keyboards.action_choices."""
    return [(member.value, labels[member.value]) for member in kind]


def _recorded(context: Context, made: Any) -> tuple[str, int]:
    text = texts.contact_done(made.channel.value, made.outcome.value)
    return text, user_data(context)[LOAN_ID]


CONTACT_ENTRY = Entry(button=CB.LOAN_CONTACT, usage=texts.CONTACT_USAGE)
CONTACT = Change(promises.record_contact, _recorded)
NOTE_AGAIN = Ask(texts.CONTACT_ASK_NOTE_AGAIN, State.NOTE)


@require_staff
async def contact_entry(update: Update, context: Context, actor: Actor) -> int:
    """/contact <number> or Contact on a card: how was the borrower reached?"""
    view = await loan_action.load(update, context, actor, CONTACT_ENTRY)
    if view is None:
        return actions.END
    markup = keyboards.action_choices(
        CB.CONTACT_CHANNEL, view.id, _choices(ContactChannel, texts.CONTACT_CHANNELS)
    )
    text = texts.contact_ask_channel(view.loan_number, view.borrower_name)
    return await loan_action.start(
        update, context, NAME, view, text, State.CHANNEL, reply_markup=markup
    )


@actions.step(NAME)
async def channel(update: Update, context: Context, actor: Actor) -> int | None:
    """A channel pressed: ask the outcome in the same message."""
    data = user_data(context)
    value = await actions.chosen(update, context, CB.CONTACT_CHANNEL, set(ContactChannel))
    if value is None:
        return None
    data[CHANNEL] = value
    choices = _choices(ContactOutcome, texts.CONTACT_OUTCOMES)
    await query_of(update).edit_message_text(
        texts.contact_ask_outcome(data[BORROWER], value),
        reply_markup=keyboards.action_choices(CB.CONTACT_OUTCOME, data[LOAN_ID], choices),
    )
    return State.OUTCOME


@actions.step(NAME)
async def outcome(update: Update, context: Context, actor: Actor) -> int | None:
    """An outcome pressed: ask for a note (or Skip)."""
    data = user_data(context)
    value = await actions.chosen(update, context, CB.CONTACT_OUTCOME, set(ContactOutcome))
    if value is None:
        return None
    data[OUTCOME] = value
    await query_of(update).edit_message_text(
        texts.contact_ask_note(data[BORROWER], data[CHANNEL], value),
        reply_markup=keyboards.action_skip(data[LOAN_ID], texts.BTN_SKIP),
    )
    return State.NOTE


@actions.step(NAME)
async def skip_note(update: Update, context: Context, actor: Actor) -> int | None:
    """Skip pressed: record the contact without a note."""
    if await actions.pressed(update, context, CB.CONTACT_SKIP, 1) is None:
        return None
    await query_of(update).edit_message_reply_markup(None)
    return await _record(update, context, actor, None)


@actions.step(NAME)
async def note_text(update: Update, context: Context, actor: Actor) -> int:
    """The note typed ("skip" means none): record the contact."""
    text = text_of(update).strip()
    return await _record(update, context, actor, None if text.lower() in texts.SKIP_WORDS else text)


async def _record(update: Update, context: Context, actor: Actor, note: str | None) -> int:
    """Record the contact; its result follows as a new message (the question stays)."""
    data = user_data(context)
    arguments = {
        "actor": actor,
        "loan_number": data[NUMBER],
        "channel": ContactChannel(data[CHANNEL]),
        "outcome": ContactOutcome(data[OUTCOME]),
        "note": note,
    }
    return await loan_action.commit(
        update, context, actor, CONTACT, arguments, (NOTE_AGAIN,), in_place=False
    )
