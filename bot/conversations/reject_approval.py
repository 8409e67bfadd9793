"""Reject on an approval card: the reason first, then the rejection (the first decision wins).

The press is checked before the reason is asked (the request may have been decided or
withdrawn meanwhile, or be the presser's own); a reason too short is asked again.
"""

from __future__ import annotations

from enum import IntEnum

from telegram import Update
from telegram.ext import CallbackQueryHandler, ConversationHandler, MessageHandler

from bot import approval_jobs, keyboards, texts
from bot.context import Context, db, reply, require_staff
from bot.conversations import TEXT_INPUT, actions, cancel_fallback
from bot.conversations.actions import ACTIVE
from bot.handlers.replies import pressed, today
from bot.keyboards import CB
from bot.updates import text_of, user_data
from db.services.access import Actor
from db.services.approvals import decide as decisions
from db.services.errors import InvalidInput, ServiceError

NAME = "reject_approval"
APPROVAL = "apv.id"


class State(IntEnum):
    REASON = 1


def build_handler() -> ConversationHandler:
    return actions.conversation(
        entry_points=[
            CallbackQueryHandler(reject_entry, pattern=keyboards.pattern(CB.APPROVAL_NO))
        ],
        states={State.REASON: [MessageHandler(TEXT_INPUT, reject_reason)]},
        fallbacks=[cancel_fallback()],
        name=NAME,
    )


@require_staff
async def reject_entry(update: Update, context: Context, actor: Actor) -> int:
    """Reject pressed: refuse at once when it cannot be decided, else ask the reason."""
    ids = await pressed(update, CB.APPROVAL_NO)
    if ids is None:
        return actions.END
    try:
        await db(context, decisions.check_decidable, actor=actor, approval_id=ids[0])
    except ServiceError as err:
        await actions.say(update, texts.service_error(err))
        return actions.END
    user_data(context).clear()
    user_data(context).update({ACTIVE: NAME, APPROVAL: ids[0]})
    await actions.say(update, texts.APPROVAL_REJECT_ASK.format(id=ids[0]))
    return State.REASON


@actions.step(NAME)
async def reject_reason(update: Update, context: Context, actor: Actor) -> int:
    """The reason typed: reject with it (asked again when too short)."""
    try:
        await db(
            context,
            decisions.decide,
            actor=actor,
            approval_id=user_data(context)[APPROVAL],
            approve=False,
            reason=text_of(update),
            today=today(context),
        )
    except InvalidInput as err:
        await reply(update, f"{texts.service_error(err)} {texts.APPROVAL_REJECT_AGAIN}")
        return State.REASON
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        user_data(context).clear()
        return actions.END
    approval_id = user_data(context).pop(APPROVAL)
    user_data(context).clear()
    await reply(update, texts.APPROVAL_REJECTED_DONE.format(id=approval_id))
    await approval_jobs.after_decision(context)
    return actions.END
