"""/contact and the card's Contact button: channel, outcome, an optional note."""

from __future__ import annotations

import logging
from enum import IntEnum

from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, ConversationHandler, MessageHandler

from bot import keyboards, texts
from bot.context import Context, db, require_staff
from bot.conversations import TEXT_INPUT, actions, cancel_fallback
from bot.conversations.actions import BORROWER, LOAN_ID, NUMBER
from bot.handlers.loans import show_card
from bot.keyboards import CB
from bot.updates import query_of, text_of, user_data
from db.models import ContactChannel, ContactOutcome
from db.services.access import Actor
from db.services.collection import promises
from db.services.errors import InvalidInput, ServiceError
from db.services.loans.snapshots import LoanView

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
    return actions.conversation(
        entry_points=[
            CommandHandler("contact", contact_command),
            CallbackQueryHandler(contact_button, pattern=keyboards.pattern(CB.LOAN_CONTACT)),
        ],
        states={
            State.CHANNEL: [
                CallbackQueryHandler(channel, pattern=keyboards.pattern(CB.CONTACT_CHANNEL)),
                MessageHandler(TEXT_INPUT, actions.buttons_only(NAME)),
            ],
            State.OUTCOME: [
                CallbackQueryHandler(outcome, pattern=keyboards.pattern(CB.CONTACT_OUTCOME)),
                MessageHandler(TEXT_INPUT, actions.buttons_only(NAME)),
            ],
            State.NOTE: [
                CallbackQueryHandler(skip_note, pattern=keyboards.pattern(CB.CONTACT_SKIP)),
                MessageHandler(TEXT_INPUT, note_text),
            ],
        },
        fallbacks=[cancel_fallback()],
        name="contact",
    )


@require_staff
async def contact_command(update: Update, context: Context, actor: Actor) -> int:
    """/contact <number>: how was the borrower reached?"""
    view = await actions.loan_of_args(update, context, actor, texts.CONTACT_USAGE)
    return actions.END if view is None else await _ask_channel(update, context, view)


@require_staff
async def contact_button(update: Update, context: Context, actor: Actor) -> int:
    """Contact on a card (a stale card is shown afresh instead)."""
    view = await actions.loan_of_button(update, context, actor, CB.LOAN_CONTACT)
    return actions.END if view is None else await _ask_channel(update, context, view)


async def _ask_channel(update: Update, context: Context, view: LoanView) -> int:
    actions.begin(context, NAME, view)
    choices = [(c.value, texts.CONTACT_CHANNELS[c.value]) for c in ContactChannel]
    markup = keyboards.action_choices(CB.CONTACT_CHANNEL, view.id, choices)
    await actions.say(
        update, texts.contact_ask_channel(view.loan_number, view.borrower_name), reply_markup=markup
    )
    return State.CHANNEL


@actions.step(NAME)
async def channel(update: Update, context: Context, actor: Actor) -> int | None:
    """A channel pressed: ask the outcome in the same message."""
    value = await actions.chosen(
        update, context, CB.CONTACT_CHANNEL, {c.value for c in ContactChannel}
    )
    if value is None:
        return None
    user_data(context)[CHANNEL] = value
    choices = [(o.value, texts.CONTACT_OUTCOMES[o.value]) for o in ContactOutcome]
    await query_of(update).edit_message_text(
        texts.contact_ask_outcome(user_data(context)[BORROWER], value),
        reply_markup=keyboards.action_choices(
            CB.CONTACT_OUTCOME, user_data(context)[LOAN_ID], choices
        ),
    )
    return State.OUTCOME


@actions.step(NAME)
async def outcome(update: Update, context: Context, actor: Actor) -> int | None:
    """An outcome pressed: ask for a note (or Skip)."""
    value = await actions.chosen(
        update, context, CB.CONTACT_OUTCOME, {o.value for o in ContactOutcome}
    )
    if value is None:
        return None
    data = user_data(context)
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
    data = user_data(context)
    try:
        made = await db(
            context,
            promises.record_contact,
            actor=actor,
            loan_number=data[NUMBER],
            channel=ContactChannel(data[CHANNEL]),
            outcome=ContactOutcome(data[OUTCOME]),
            note=note,
        )
    except InvalidInput as err:
        await actions.say(update, texts.action_again(err.message, texts.CONTACT_ASK_NOTE_AGAIN))
        return State.NOTE
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    loan_id = data[LOAN_ID]
    actions.finish(context)
    await actions.say(update, texts.contact_done(made.channel.value, made.outcome.value))
    await show_card(update, context, actor, loan_id)
    return actions.END
