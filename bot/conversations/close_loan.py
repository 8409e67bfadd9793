"""Ending a loan's life: /close, write-off (managers), /archive or /delete and /restore (admins).

Close and write-off are previewed with the service itself (actions.dry_run), so a loan with
money owed, or a reason too short, is refused before anything is asked to be confirmed.
Nothing is ever deleted: /delete archives, asking a reason and a confirmation, as /restore
does. Reassigning is in bot/handlers/assign.py (it needs no conversation).
"""

from __future__ import annotations

import logging
from enum import IntEnum

from telegram import Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)

from bot import keyboards, texts
from bot.context import Context, agency_of, db, require_staff
from bot.conversations import TEXT_INPUT, actions, cancel_fallback
from bot.conversations.actions import LOAN_ID, NUMBER, VERSION
from bot.handlers.loans import show_card
from bot.keyboards import CB
from db.models import Role
from db.services.access import Actor
from db.services.errors import Conflict, InvalidInput, ServiceError
from db.services.loans import add as loan_service
from db.services.loans.snapshots import LoanView

log = logging.getLogger(__name__)

NAME = "close_loan"
REASON = "act.reason"


class State(IntEnum):
    CLOSE = 1
    WRITE_OFF_REASON = 2
    WRITE_OFF = 3
    ARCHIVE_REASON = 4
    ARCHIVE = 5
    RESTORE_REASON = 6
    RESTORE = 7


def _buttons(state_handlers: list[BaseHandler]) -> list[BaseHandler]:
    return [*state_handlers, MessageHandler(TEXT_INPUT, actions.buttons_only(NAME))]


def build_handler() -> ConversationHandler:
    """Close, write off, archive, restore: each a confirmation (all but close ask a reason)."""
    cancel = CallbackQueryHandler(
        actions.cancel_step(NAME), pattern=keyboards.pattern(CB.ACTION_CANCEL)
    )

    def on(prefix: CB, callback) -> CallbackQueryHandler:
        return CallbackQueryHandler(callback, pattern=keyboards.pattern(prefix))

    return actions.conversation(
        entry_points=[
            CommandHandler("close", close_command),
            on(CB.LOAN_CLOSE, close_button),
            on(CB.LOAN_WRITE_OFF, write_off_button),
            CommandHandler(["delete", "archive"], archive_command),
            on(CB.LOAN_DELETE, archive_button),
            CommandHandler("restore", restore_command),
            on(CB.LOAN_RESTORE, restore_button),
        ],
        states={
            State.CLOSE: _buttons([on(CB.CLOSE_CONFIRM, close_confirmed), cancel]),
            State.WRITE_OFF_REASON: [MessageHandler(TEXT_INPUT, write_off_reason)],
            State.WRITE_OFF: _buttons([on(CB.WRITE_OFF_CONFIRM, write_off_confirmed), cancel]),
            State.ARCHIVE_REASON: [MessageHandler(TEXT_INPUT, archive_reason)],
            State.ARCHIVE: _buttons([on(CB.ARCHIVE_CONFIRM, archive_confirmed), cancel]),
            State.RESTORE_REASON: [MessageHandler(TEXT_INPUT, restore_reason)],
            State.RESTORE: _buttons([on(CB.RESTORE_CONFIRM, restore_confirmed), cancel]),
        },
        fallbacks=[cancel_fallback()],
        name="close_loan",
    )


def _markup(context: Context, prefix: CB, label: str):
    data = context.user_data
    return keyboards.action_confirm(prefix, data[LOAN_ID], data[VERSION], label, texts.BTN_CANCEL)


async def _confirm(update: Update, context: Context, prefix: CB, label: str, text: str) -> None:
    await actions.say(update, text, reply_markup=_markup(context, prefix, label))


async def _done(
    update: Update, context: Context, actor: Actor, text: str, loan_id: int | None
) -> int:
    """Say the result in place of the confirmation, then the fresh card (if there is a loan)."""
    actions.finish(context)
    await update.callback_query.edit_message_text(text)
    if loan_id is not None:
        await show_card(update, context, actor, loan_id)
    return actions.END


# --- close ---------------------------------------------------------------------------------


@require_staff
async def close_command(update: Update, context: Context, actor: Actor) -> int:
    """/close <number>."""
    view = await actions.loan_of_args(update, context, actor, texts.CLOSE_USAGE)
    return actions.END if view is None else await _offer_close(update, context, actor, view)


@require_staff
async def close_button(update: Update, context: Context, actor: Actor) -> int:
    """Close on a card."""
    view = await actions.loan_of_button(update, context, actor, CB.LOAN_CLOSE)
    return actions.END if view is None else await _offer_close(update, context, actor, view)


async def _offer_close(update: Update, context: Context, actor: Actor, view: LoanView) -> int:
    actions.begin(context, NAME, view)
    try:
        await db(
            context,
            actions.dry_run,
            fn=loan_service.close_loan,
            actor=actor,
            loan_number=view.loan_number,
            expected_version=view.version,
            today=actions.today_of(context),
            agency=agency_of(context),
        )
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    text = texts.close_confirm(view.loan_number, view.borrower_name)
    await _confirm(update, context, CB.CLOSE_CONFIRM, texts.BTN_CONFIRM, text)
    return State.CLOSE


@actions.step(NAME)
async def close_confirmed(update: Update, context: Context, actor: Actor) -> int | None:
    """Confirm pressed: close the loan."""
    ids = await actions.pressed(update, context, CB.CLOSE_CONFIRM)
    if ids is None:
        return None
    try:
        view = await db(
            context,
            loan_service.close_loan,
            actor=actor,
            loan_number=context.user_data[NUMBER],
            expected_version=ids[1],
            today=actions.today_of(context),
            agency=agency_of(context),
        )
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    return await _done(
        update, context, actor, texts.loan_done(texts.CLOSE_DONE, view.loan_number), view.id
    )


# --- write-off -----------------------------------------------------------------------------


@require_staff
async def write_off_button(update: Update, context: Context, actor: Actor) -> int:
    """Write off on a card (managers and admins): ask the reason."""
    if not await actions.allowed(update, actor, Role.MANAGER, "write off loans"):
        return actions.END
    view = await actions.loan_of_button(update, context, actor, CB.LOAN_WRITE_OFF)
    if view is None:
        return actions.END
    actions.begin(context, NAME, view)
    await actions.say(
        update,
        texts.write_off_ask(
            view.loan_number, view.borrower_name, actions.money(context, view.outstanding)
        ),
    )
    return State.WRITE_OFF_REASON


@actions.step(NAME)
async def write_off_reason(update: Update, context: Context, actor: Actor) -> int:
    """The reason typed: check it with the service (nothing written), then confirm."""
    data, reason = context.user_data, update.message.text
    try:
        view = await db(
            context,
            actions.dry_run,
            fn=loan_service.write_off_loan,
            actor=actor,
            loan_number=data[NUMBER],
            reason=reason,
            expected_version=data[VERSION],
            today=actions.today_of(context),
        )
    except InvalidInput as err:
        await actions.say(update, texts.action_again(err.message, texts.WRITE_OFF_ASK_AGAIN))
        return State.WRITE_OFF_REASON
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    data[REASON] = reason
    text = texts.write_off_confirm(
        view.loan_number, actions.money(context, view.outstanding), view.state_reason or reason
    )
    await _confirm(update, context, CB.WRITE_OFF_CONFIRM, texts.BTN_WRITE_OFF, text)
    return State.WRITE_OFF


@actions.step(NAME)
async def write_off_confirmed(update: Update, context: Context, actor: Actor) -> int | None:
    """Write off pressed: write the loan off with the reason."""
    ids = await actions.pressed(update, context, CB.WRITE_OFF_CONFIRM)
    if ids is None:
        return None
    data = context.user_data
    try:
        view = await db(
            context,
            loan_service.write_off_loan,
            actor=actor,
            loan_number=data[NUMBER],
            reason=data[REASON],
            expected_version=ids[1],
            today=actions.today_of(context),
        )
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    text = texts.loan_done(texts.WRITE_OFF_DONE, view.loan_number)
    return await _done(update, context, actor, text, view.id)


# --- archive (/delete, /archive) and restore: loans are never deleted ------------------------


@require_staff
async def archive_command(update: Update, context: Context, actor: Actor) -> int:
    """/archive <number> or /delete <number> (admins): ask the reason."""
    if not await actions.allowed(update, actor, Role.ADMIN, "archive loans"):
        return actions.END
    view = await actions.loan_of_args(update, context, actor, texts.ARCHIVE_USAGE)
    return actions.END if view is None else await _ask_archive(update, context, view)


@require_staff
async def archive_button(update: Update, context: Context, actor: Actor) -> int:
    """Archive on a card (admins)."""
    if not await actions.allowed(update, actor, Role.ADMIN, "archive loans"):
        return actions.END
    view = await actions.loan_of_button(update, context, actor, CB.LOAN_DELETE)
    return actions.END if view is None else await _ask_archive(update, context, view)


async def _ask_archive(update: Update, context: Context, view: LoanView) -> int:
    if view.archived_at is not None:
        await actions.say(
            update,
            texts.service_error(
                Conflict(f"Loan {view.loan_number} is archived already.", code="loan_archived")
            ),
        )
        return actions.END
    actions.begin(context, NAME, view)
    await actions.say(
        update, texts.archive_ask(texts.ARCHIVE_ASK, view.loan_number, view.borrower_name)
    )
    return State.ARCHIVE_REASON


@actions.step(NAME)
async def archive_reason(update: Update, context: Context, actor: Actor) -> int:
    """The reason typed: check it with the service (nothing written), then confirm."""
    return await _reason_step(
        update,
        context,
        actor,
        loan_service.archive_loan,
        State.ARCHIVE_REASON,
        State.ARCHIVE,
        CB.ARCHIVE_CONFIRM,
        texts.ARCHIVE_CONFIRM,
        texts.BTN_ARCHIVE,
    )


@actions.step(NAME)
async def archive_confirmed(update: Update, context: Context, actor: Actor) -> int | None:
    """Archive pressed: archive the loan with the reason; the admin sees its archived card."""
    ids = await actions.pressed(update, context, CB.ARCHIVE_CONFIRM)
    if ids is None:
        return None
    data = context.user_data
    try:
        done = await db(
            context,
            loan_service.archive_loan,
            actor=actor,
            loan_number=data[NUMBER],
            reason=data[REASON],
            expected_version=ids[1],
        )
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    text = texts.loan_done(texts.ARCHIVE_DONE, done.loan_number)
    if done.withdrawn:
        text += texts.ARCHIVE_WITHDRAWN.format(count=done.withdrawn)
    return await _done(update, context, actor, text, done.loan_id)


@require_staff
async def restore_command(update: Update, context: Context, actor: Actor) -> int:
    """/restore <number> (admins): ask the reason."""
    if not await actions.allowed(update, actor, Role.ADMIN, "restore loans"):
        return actions.END
    view = await actions.loan_of_args(update, context, actor, texts.RESTORE_USAGE)
    return actions.END if view is None else await _ask_restore(update, context, view)


@require_staff
async def restore_button(update: Update, context: Context, actor: Actor) -> int:
    """Restore on an archived loan's card (admins)."""
    if not await actions.allowed(update, actor, Role.ADMIN, "restore loans"):
        return actions.END
    view = await actions.loan_of_button(update, context, actor, CB.LOAN_RESTORE)
    return actions.END if view is None else await _ask_restore(update, context, view)


async def _ask_restore(update: Update, context: Context, view: LoanView) -> int:
    if view.archived_at is None:
        await actions.say(update, texts.loan_done(texts.RESTORE_NOT_ARCHIVED, view.loan_number))
        return actions.END
    actions.begin(context, NAME, view)
    await actions.say(
        update,
        texts.archive_ask(
            texts.RESTORE_ASK, view.loan_number, view.borrower_name, view.archive_reason or "-"
        ),
    )
    return State.RESTORE_REASON


@actions.step(NAME)
async def restore_reason(update: Update, context: Context, actor: Actor) -> int:
    """The reason typed: check it, then confirm."""
    return await _reason_step(
        update,
        context,
        actor,
        loan_service.restore_loan,
        State.RESTORE_REASON,
        State.RESTORE,
        CB.RESTORE_CONFIRM,
        texts.RESTORE_CONFIRM,
        texts.BTN_RESTORE,
    )


@actions.step(NAME)
async def restore_confirmed(update: Update, context: Context, actor: Actor) -> int | None:
    """Restore pressed: the loan is back in every list; its fresh card follows."""
    if await actions.pressed(update, context, CB.RESTORE_CONFIRM) is None:
        return None
    data = context.user_data
    try:
        done = await db(
            context,
            loan_service.restore_loan,
            actor=actor,
            loan_number=data[NUMBER],
            reason=data[REASON],
        )
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    text = texts.loan_done(texts.RESTORE_DONE, done.loan_number)
    return await _done(update, context, actor, text, done.loan_id)


async def _reason_step(
    update: Update,
    context: Context,
    actor: Actor,
    fn,
    again: State,
    then: State,
    prefix: CB,
    template: str,
    label: str,
) -> int:
    """A reason for archive or restore: dry-run the service with it; ask again or confirm."""
    data, reason = context.user_data, update.message.text
    try:
        await db(
            context, actions.dry_run, fn=fn, actor=actor, loan_number=data[NUMBER], reason=reason
        )
    except InvalidInput as err:
        await actions.say(update, texts.action_again(err.message, texts.ARCHIVE_ASK_AGAIN))
        return again
    except ServiceError as err:
        return await actions.refused(update, context, actor, err)
    data[REASON] = reason
    await _confirm(
        update,
        context,
        prefix,
        label,
        texts.archive_confirm(template, data[NUMBER], reason.strip()),
    )
    return then
