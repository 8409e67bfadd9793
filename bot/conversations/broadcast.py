"""/broadcast (admins): audience → text → preview → Send, and the preview becomes the progress.

The audience is checked for anyone in it as soon as it is chosen; the text is checked and
previewed by the service (length, unknown placeholders, the message as the first recipient
gets it). Send queues it and points the broadcast at the preview message, which bot.jobs
then edits as the messages go. Every button carries the form's token, so a button of an
older /broadcast does nothing to this one.
"""

from __future__ import annotations

import logging
import secrets
from enum import IntEnum

from telegram import InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import (
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    filters,
)

from bot import jobs, keyboards, texts
from bot.context import Context, answer_button, db, require_staff, settings_of
from bot.conversations import TEXT_INPUT, actions, cancel_fallback
from bot.keyboards import CB
from bot.updates import query_of, text_of, user_data
from db.models import Role, StaffState
from db.services.access import Actor
from db.services.broadcasts import compose as bc
from db.services.broadcasts.audiences import Audience, AudienceKind, audience_words_if_anyone
from db.services.broadcasts.progress_message import start_broadcast
from db.services.collection.ledger import Bucket
from db.services.errors import InvalidInput, ServiceError
from db.services.staff import members as staff_service

log = logging.getLogger(__name__)

NAME = "broadcast"
TOKEN = "bc.tok"
AUDIENCE = "bc.aud"  # Audience.to_json()
WHO = "bc.who"  # the audience in words
TEMPLATE = "bc.text"
BUCKETS = list(Bucket)
MAX_AGENTS = 30
OTHER_INPUT = filters.UpdateType.MESSAGE & ~filters.COMMAND & ~filters.TEXT


class State(IntEnum):
    AUDIENCE = 1
    BUCKET = 2
    AGENT = 3
    TAG = 4
    TEXT = 5
    CONFIRM = 6


def build_handler() -> ConversationHandler:
    """The /broadcast conversation."""

    def press(prefix: CB, callback) -> CallbackQueryHandler:
        return CallbackQueryHandler(callback, pattern=keyboards.pattern(prefix))

    buttons_only = MessageHandler(TEXT_INPUT, actions.buttons_only(NAME))
    return actions.conversation(
        entry_points=[CommandHandler("broadcast", broadcast_command)],
        states={
            State.AUDIENCE: [press(CB.BC_AUDIENCE, audience_button), buttons_only],
            State.BUCKET: [press(CB.BC_BUCKET, bucket_button), buttons_only],
            State.AGENT: [press(CB.BC_AGENT, agent_button), buttons_only],
            State.TAG: [
                MessageHandler(TEXT_INPUT, tag_text),
                MessageHandler(OTHER_INPUT, not_text),
            ],
            State.TEXT: [
                MessageHandler(TEXT_INPUT, template_text),
                MessageHandler(OTHER_INPUT, not_text),
            ],
            State.CONFIRM: [
                press(CB.BC_SEND, send_button),
                press(CB.BC_EDIT, edit_button),
                buttons_only,
            ],
        },
        fallbacks=[cancel_fallback(), press(CB.BC_ABORT, abort_button)],
        name=NAME,
    )


# --- helpers ---------------------------------------------------------------------------------


def _fields(update: Update, context: Context, prefix: CB, count: int) -> list[str] | None:
    """The button's fields when it belongs to this form (its token matches), else None."""
    fields = keyboards.parse_fields(query_of(update).data, prefix, count + 1)
    if fields is None or fields[-1] != user_data(context).get(TOKEN):
        return None
    return fields[:-1]


async def _show(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Edit the pressed button's message, or send text when a message was typed."""
    if update.callback_query is not None and update.callback_query.message is not None:
        await update.callback_query.edit_message_text(text, reply_markup=markup)
    else:
        await actions.say(update, text, reply_markup=markup)


def _audiences(context: Context) -> InlineKeyboardMarkup:
    return keyboards.broadcast_audiences(user_data(context)[TOKEN], texts.BC_AUDIENCES)


def _today(context: Context):
    return actions.today_of(context)


async def _chosen(update: Update, context: Context, audience: Audience) -> int:
    """An audience was chosen: ask for the text, or choose again when nobody is in it."""
    words = await db(context, audience_words_if_anyone, audience=audience, today=_today(context))
    if words is None:
        await _show(update, texts.BC_NOBODY, _audiences(context))
        return State.AUDIENCE
    user_data(context).update({AUDIENCE: audience.to_json(), WHO: words})
    await _show(update, texts.bc_ask_text(words))
    return State.TEXT


# --- audience ----------------------------------------------------------------------------------


@require_staff
async def broadcast_command(update: Update, context: Context, actor: Actor) -> int:
    """/broadcast: admins choose the audience first."""
    if not await actions.allowed(update, actor, Role.ADMIN, "broadcast"):
        return actions.END
    user_data(context).clear()
    user_data(context).update({actions.ACTIVE: NAME, TOKEN: secrets.token_hex(4)})
    await actions.say(update, texts.BC_ASK_AUDIENCE, reply_markup=_audiences(context))
    return State.AUDIENCE


@actions.step(NAME)
async def audience_button(update: Update, context: Context, actor: Actor) -> int | None:
    """All / Overdue go straight to the text; bucket, agent and tag ask which first."""
    fields = _fields(update, context, CB.BC_AUDIENCE, 1)
    if fields is None or fields[0] not in {k.value for k in AudienceKind}:
        await answer_button(update, texts.OLD_BUTTON)
        return None
    await query_of(update).answer()
    kind = AudienceKind(fields[0])
    token = user_data(context)[TOKEN]
    if kind is AudienceKind.BUCKET:
        labels = [f"{b.value} days" for b in BUCKETS]
        await _show(update, texts.BC_ASK_BUCKET, keyboards.broadcast_buckets(token, labels))
        return State.BUCKET
    if kind is AudienceKind.AGENT:
        return await _ask_agent(update, context, actor)
    if kind is AudienceKind.TAG:
        await _show(update, texts.BC_ASK_TAG)
        return State.TAG
    return await _chosen(update, context, Audience(kind))


async def _ask_agent(update: Update, context: Context, actor: Actor) -> int:
    people = await db(context, staff_service.list_staff, actor=actor)
    holders = [
        (p.id, f"{p.name} · {p.role.value}")
        for p in people
        if p.state == StaffState.ACTIVE and p.role in (Role.AGENT, Role.MANAGER)
    ]
    if not holders:
        await _show(update, texts.BC_NO_AGENTS, _audiences(context))
        return State.AUDIENCE
    markup = keyboards.broadcast_agents(user_data(context)[TOKEN], holders[:MAX_AGENTS])
    await _show(update, texts.BC_ASK_AGENT, markup)
    return State.AGENT


@actions.step(NAME)
async def bucket_button(update: Update, context: Context, actor: Actor) -> int | None:
    """A days-past-due bucket (by its index)."""
    fields = _fields(update, context, CB.BC_BUCKET, 1)
    if fields is None or fields[0] not in {str(i) for i in range(len(BUCKETS))}:
        await answer_button(update, texts.OLD_BUTTON)
        return None
    await query_of(update).answer()
    return await _chosen(
        update, context, Audience(AudienceKind.BUCKET, bucket=BUCKETS[int(fields[0])])
    )


@actions.step(NAME)
async def agent_button(update: Update, context: Context, actor: Actor) -> int | None:
    """One agent's borrowers."""
    fields = _fields(update, context, CB.BC_AGENT, 1)
    if fields is None or not (fields[0].isdigit() and 0 < len(fields[0]) <= 18):
        await answer_button(update, texts.OLD_BUTTON)
        return None
    await query_of(update).answer()
    return await _chosen(update, context, Audience(AudienceKind.AGENT, agent_id=int(fields[0])))


@actions.step(NAME)
async def tag_text(update: Update, context: Context, actor: Actor) -> int | None:
    """The tag typed."""
    try:
        audience = Audience(AudienceKind.TAG, tag=text_of(update))
    except InvalidInput as err:
        await actions.say(update, texts.bc_again(err.message, texts.BC_TAG_AGAIN))
        return None
    return await _chosen(update, context, audience)


@actions.step(NAME)
async def not_text(update: Update, context: Context, actor: Actor) -> None:
    """A sticker, photo or the like where text is expected: ask again, same step."""
    await actions.say(update, texts.BC_TEXT_ONLY)


# --- text and preview ----------------------------------------------------------------------


@actions.step(NAME)
async def template_text(update: Update, context: Context, actor: Actor) -> int | None:
    """The text: checked and previewed by the service, or refused with why."""
    settings = settings_of(context)
    audience = Audience.from_json(user_data(context)[AUDIENCE])
    try:
        text = bc.clean_template(text_of(update))
        preview = await db(
            context,
            bc.preview_broadcast,
            actor=actor,
            audience=audience,
            template=text,
            today=_today(context),
            settings=settings,
        )
    except InvalidInput as err:
        if err.code == "audience_empty":  # everyone left the audience meanwhile
            await actions.say(update, texts.BC_NOBODY, reply_markup=_audiences(context))
            return State.AUDIENCE
        await actions.say(update, texts.bc_again(err.message, texts.BC_TEXT_AGAIN))
        return None
    except ServiceError as err:
        await actions.say(update, texts.service_error(err))
        return actions.finish(context)
    user_data(context)[TEMPLATE] = text
    await actions.say(
        update,
        _preview_text(user_data(context)[WHO], preview),
        reply_markup=keyboards.broadcast_confirm(
            user_data(context)[TOKEN],
            texts.BC_BTN_SEND.format(count=preview.sendable),
            texts.BC_BTN_EDIT,
        ),
    )
    return State.CONFIRM


def _preview_text(words: str, preview: bc.Preview) -> str:
    return texts.bc_preview(
        words,
        preview.recipients,
        preview.sendable,
        preview.suppressed_by_reason,
        preview.sample,
        preview.encoding,
        preview.segments_per_message,
        preview.total_segments,
    )


@actions.step(NAME)
async def edit_button(update: Update, context: Context, actor: Actor) -> int | None:
    """Edit text: the preview loses its buttons and the text is asked again."""
    if _fields(update, context, CB.BC_EDIT, 0) is None:
        await answer_button(update, texts.OLD_BUTTON)
        return None
    await query_of(update).answer()
    await query_of(update).edit_message_reply_markup(None)
    await actions.say(update, texts.bc_ask_text(user_data(context)[WHO]))
    return State.TEXT


@actions.step(NAME)
async def abort_button(update: Update, context: Context, actor: Actor) -> int | None:
    """Cancel on any step: nothing is sent."""
    if _fields(update, context, CB.BC_ABORT, 0) is None:
        await answer_button(update, texts.OLD_BUTTON)
        return None
    await query_of(update).answer()
    await query_of(update).edit_message_text(texts.BC_CANCELLED)
    return actions.finish(context)


# --- send ----------------------------------------------------------------------------------


@actions.step(NAME)
async def send_button(update: Update, context: Context, actor: Actor) -> int | None:
    """Send: queue every message; the preview turns into the progress message."""
    query = query_of(update)
    if _fields(update, context, CB.BC_SEND, 0) is None or query.message is None:
        await answer_button(update, texts.OLD_BUTTON)
        return None
    await query.answer()
    try:
        report = await db(
            context,
            start_broadcast,
            actor=actor,
            audience=Audience.from_json(user_data(context)[AUDIENCE]),
            template=user_data(context)[TEMPLATE],
            today=_today(context),
            settings=settings_of(context),
            chat_id=query.message.chat.id,
            message_id=query.message.message_id,
        )
    except ServiceError as err:
        await query.edit_message_reply_markup(None)
        await actions.say(update, texts.service_error(err))
        return actions.finish(context)
    log.info("broadcast %s queued by staff %s", report.tracked.broadcast_id, actor.staff_id)
    text = jobs.render(report)
    try:
        await query.edit_message_text(text)
        jobs.note_edit(context, report.tracked.broadcast_id, text)
    except TelegramError as exc:  # queued all the same: the progress job edits it later
        log.warning(
            "could not show the progress of broadcast %s: %s", report.tracked.broadcast_id, exc
        )
    return actions.finish(context)
