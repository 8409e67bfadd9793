"""Suppressed numbers: /unsuppress <phone> [reason], the Lift buttons of /deliveries, and
the confirmation both lead to. The service checks who may lift what and audits the lift.

The reason typed after the phone waits in user_data (keyed by the phone) until the admin
confirms: callback data holds 64 bytes, not a sentence.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot import keyboards, texts
from bot.context import Context, answer_button, db, reply, require_staff, settings_of
from bot.handlers.replies import command_text
from bot.keyboards import CB
from bot.updates import query_of, user_data
from db.services.access import Actor
from db.services.errors import InvalidInput, ServiceError
from db.services.sms import suppressions
from db.validation import clean_text, parse_phone

log = logging.getLogger(__name__)

REASONS = "unsuppress_reasons"  # user_data key: {phone: reason}
_PHONE_CHARS = frozenset("+0123456789-()")


def handlers() -> list[BaseHandler]:
    """The command and its buttons, in the order app.py registers them."""
    return [
        CommandHandler("unsuppress", unsuppress_command),
        CallbackQueryHandler(lift_button, pattern=keyboards.pattern(CB.SUP_LIFT)),
        CallbackQueryHandler(yes_button, pattern=keyboards.pattern(CB.SUP_YES)),
        CallbackQueryHandler(no_button, pattern=keyboards.pattern(CB.SUP_NO)),
    ]


def split_phone(text: str, region: str) -> tuple[str, str]:
    """The leading phone in E.164 (typed with spaces or not) and the reason after it.

    The longest run of leading words that reads as a phone wins, so a reason that starts
    with a number ("+919876543210 2 SIMs") is not eaten. InvalidInput when none does."""
    words = text.split()
    run = 0
    while run < len(words) and set(words[run]) <= _PHONE_CHARS:
        run += 1
    for taken in range(run, 1, -1):
        try:
            return parse_phone(" ".join(words[:taken]), region=region), " ".join(words[taken:])
        except InvalidInput:
            continue
    return parse_phone(words[0], region=region), " ".join(words[1:])


async def _confirm(update: Update, context: Context, actor: Actor, phone: str) -> bool:
    """Show what the suppression is, with Yes / Cancel; False (answered) when refused."""
    try:
        info = await db(context, suppressions.get_suppression, actor=actor, phone=phone)
    except ServiceError as err:
        if update.callback_query:
            await answer_button(update, err.message)
        else:
            await reply(update, texts.service_error(err))
        return False
    since = texts.local_time(info.created_at, settings_of(context).tz)
    await reply(
        update,
        texts.sup_confirm(info.phone, info.kind.value, info.reason, since),
        reply_markup=keyboards.lift_confirm(info.phone, texts.SUP_BTN_YES, texts.SUP_BTN_NO),
    )
    return True


@require_staff
async def unsuppress_command(update: Update, context: Context, actor: Actor) -> None:
    """/unsuppress <phone> [reason]: ask to confirm lifting the number's suppression."""
    text = await command_text(update, context, texts.UNSUPPRESS_USAGE)
    if text is None:
        return
    try:
        phone, why = split_phone(text, settings_of(context).default_phone_region)
        reason = clean_text(why, field="reason", max_len=200, required=False)
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    if await _confirm(update, context, actor, phone):
        user_data(context).setdefault(REASONS, {})[phone] = reason


def _phone_of(update: Update, prefix: CB) -> str | None:
    fields = keyboards.parse_fields(query_of(update).data, prefix, 1)
    if fields is None or not (fields[0].isdigit() and len(fields[0]) <= 15):
        return None
    return "+" + fields[0]


@require_staff
async def lift_button(update: Update, context: Context, actor: Actor) -> None:
    """sup:lift:<digits> under /deliveries: ask to confirm (no reason: lifted from the list)."""
    phone = _phone_of(update, CB.SUP_LIFT)
    if phone is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    user_data(context).get(REASONS, {}).pop(phone, None)
    await _confirm(update, context, actor, phone)


@require_staff
async def yes_button(update: Update, context: Context, actor: Actor) -> None:
    """sup:yes:<digits>: lift it (audited by the service), then say so in place."""
    phone = _phone_of(update, CB.SUP_YES)
    if phone is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    reason = user_data(context).get(REASONS, {}).get(phone)
    try:
        await db(context, suppressions.lift, actor=actor, phone=phone, reason=reason)
    except ServiceError as err:
        await answer_button(update, err.message)
        return
    user_data(context).get(REASONS, {}).pop(phone, None)
    log.info("suppression of a number lifted by staff %s", actor.staff_id)
    await query_of(update).answer()
    await query_of(update).edit_message_text(texts.sup_lifted(phone))


@require_staff
async def no_button(update: Update, context: Context, actor: Actor) -> None:
    """sup:no:<digits>: nothing changes."""
    phone = _phone_of(update, CB.SUP_NO)
    if phone is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    user_data(context).get(REASONS, {}).pop(phone, None)
    await query_of(update).answer()
    await query_of(update).edit_message_text(texts.sup_lift_canceled(phone))
