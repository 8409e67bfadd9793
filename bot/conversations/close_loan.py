"""Ending a loan's life: /close, write-off (managers), /archive or /delete and /restore (admins).

Each is a loan action (loan_action.py): close asks a confirmation; write-off, archive and
restore ask a reason first. Close and write-off are previewed with the service itself
(actions.dry_run), so a loan with money owed, or a reason too short, is refused before
anything is asked to be confirmed. Nothing is ever deleted: /delete archives, asking a
reason and a confirmation, as /restore does. Reassigning is in bot/handlers/assign.py (it
needs no conversation).
"""

from __future__ import annotations

import logging
from enum import IntEnum
from typing import Any

from telegram import Update
from telegram.ext import ConversationHandler, MessageHandler

from bot import texts
from bot.context import Context, agency_of, require_staff
from bot.conversations import TEXT_INPUT, actions, loan_action
from bot.conversations.actions import NUMBER, VERSION
from bot.conversations.loan_action import Ask, Change, Confirm, Entry
from bot.keyboards import CB
from bot.updates import text_of, user_data
from db.models import Role
from db.services.access import Actor
from db.services.errors import Conflict
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


def build_handler() -> ConversationHandler:
    """Close, write off, archive, restore: each a confirmation (all but close ask a reason)."""
    entries, confirm = loan_action.entry_points, loan_action.confirm_step
    return loan_action.conversation(
        NAME,
        entry_points=[
            *entries(CB.LOAN_CLOSE, close_entry, "close"),
            *entries(CB.LOAN_WRITE_OFF, write_off_entry),
            *entries(CB.LOAN_DELETE, archive_entry, ["delete", "archive"]),
            *entries(CB.LOAN_RESTORE, restore_entry, "restore"),
        ],
        states={
            State.CLOSE: confirm(NAME, close_confirmed, CB.CLOSE_CONFIRM),
            State.WRITE_OFF_REASON: [MessageHandler(TEXT_INPUT, write_off_reason)],
            State.WRITE_OFF: confirm(NAME, write_off_confirmed, CB.WRITE_OFF_CONFIRM),
            State.ARCHIVE_REASON: [MessageHandler(TEXT_INPUT, archive_reason)],
            State.ARCHIVE: confirm(NAME, archive_confirmed, CB.ARCHIVE_CONFIRM),
            State.RESTORE_REASON: [MessageHandler(TEXT_INPUT, restore_reason)],
            State.RESTORE: confirm(NAME, restore_confirmed, CB.RESTORE_CONFIRM),
        },
    )


# --- close ---------------------------------------------------------------------------------


def _close_arguments(context: Context, actor: Actor, version: int) -> dict[str, Any]:
    return {
        "actor": actor,
        "loan_number": user_data(context)[NUMBER],
        "expected_version": version,
        "today": actions.today_of(context),
        "agency": agency_of(context),
    }


def _closed(context: Context, view: LoanView) -> tuple[str, int]:
    return texts.loan_done(texts.CLOSE_DONE, view.loan_number), view.id


CLOSE_ENTRY = Entry(button=CB.LOAN_CLOSE, usage=texts.CLOSE_USAGE)
CLOSE = Confirm(
    CB.CLOSE_CONFIRM, texts.BTN_CONFIRM, Change(loan_service.close_loan, _closed), _close_arguments
)


@require_staff
async def close_entry(update: Update, context: Context, actor: Actor) -> int:
    """/close <number> or Close on a card: check with the service, then confirm."""
    view = await loan_action.load(update, context, actor, CLOSE_ENTRY)
    if view is None:
        return actions.END
    actions.begin(context, NAME, view)
    arguments = _close_arguments(context, actor, view.version)
    got = await loan_action.preview(update, context, actor, loan_service.close_loan, arguments)
    if isinstance(got, int):
        return got
    text = texts.close_confirm(view.loan_number, view.borrower_name)
    await loan_action.ask_confirm(update, context, CLOSE, text)
    return State.CLOSE


@actions.step(NAME)
async def close_confirmed(update: Update, context: Context, actor: Actor) -> int | None:
    """Confirm pressed: close the loan."""
    return await loan_action.confirmed(update, context, actor, CLOSE)


# --- write-off -----------------------------------------------------------------------------


def _write_off_arguments(context: Context, actor: Actor, version: int) -> dict[str, Any]:
    return {
        "actor": actor,
        "loan_number": user_data(context)[NUMBER],
        "reason": user_data(context)[REASON],
        "expected_version": version,
        "today": actions.today_of(context),
    }


def _written_off(context: Context, view: LoanView) -> tuple[str, int]:
    return texts.loan_done(texts.WRITE_OFF_DONE, view.loan_number), view.id


WRITE_OFF_ENTRY = Entry(button=CB.LOAN_WRITE_OFF, role=Role.MANAGER, what="write off loans")
WRITE_OFF = Confirm(
    CB.WRITE_OFF_CONFIRM,
    texts.BTN_WRITE_OFF,
    Change(loan_service.write_off_loan, _written_off),
    _write_off_arguments,
)
WRITE_OFF_AGAIN = Ask(texts.WRITE_OFF_ASK_AGAIN, State.WRITE_OFF_REASON)


@require_staff
async def write_off_entry(update: Update, context: Context, actor: Actor) -> int:
    """Write off on a card (managers and admins): ask the reason."""
    view = await loan_action.load(update, context, actor, WRITE_OFF_ENTRY)
    if view is None:
        return actions.END
    owed = actions.money(context, view.outstanding)
    text = texts.write_off_ask(view.loan_number, view.borrower_name, owed)
    return await loan_action.start(update, context, NAME, view, text, State.WRITE_OFF_REASON)


@actions.step(NAME)
async def write_off_reason(update: Update, context: Context, actor: Actor) -> int:
    """The reason typed: check it with the service (nothing written), then confirm."""
    data = user_data(context)
    reason = data[REASON] = text_of(update)
    arguments = _write_off_arguments(context, actor, data[VERSION])
    view = await loan_action.preview(
        update, context, actor, loan_service.write_off_loan, arguments, (WRITE_OFF_AGAIN,)
    )
    if isinstance(view, int):
        return view
    text = texts.write_off_confirm(
        view.loan_number, actions.money(context, view.outstanding), view.state_reason or reason
    )
    await loan_action.ask_confirm(update, context, WRITE_OFF, text)
    return State.WRITE_OFF


@actions.step(NAME)
async def write_off_confirmed(update: Update, context: Context, actor: Actor) -> int | None:
    """Write off pressed: write the loan off with the reason."""
    return await loan_action.confirmed(update, context, actor, WRITE_OFF)


# --- archive (/delete, /archive) and restore: loans are never deleted ------------------------


def _reasoned(context: Context, actor: Actor) -> dict[str, Any]:
    data = user_data(context)
    return {"actor": actor, "loan_number": data[NUMBER], "reason": data[REASON]}


def _archive_arguments(context: Context, actor: Actor, version: int) -> dict[str, Any]:
    return {**_reasoned(context, actor), "expected_version": version}


def _archived(context: Context, done: Any) -> tuple[str, int]:
    text = texts.loan_done(texts.ARCHIVE_DONE, done.loan_number)
    if done.withdrawn:
        text += texts.ARCHIVE_WITHDRAWN.format(count=done.withdrawn)
    return text, done.loan_id


def _restored(context: Context, done: Any) -> tuple[str, int]:
    return texts.loan_done(texts.RESTORE_DONE, done.loan_number), done.loan_id


ARCHIVE_ENTRY = Entry(
    button=CB.LOAN_DELETE, usage=texts.ARCHIVE_USAGE, role=Role.ADMIN, what="archive loans"
)
ARCHIVE = Confirm(
    CB.ARCHIVE_CONFIRM,
    texts.BTN_ARCHIVE,
    Change(loan_service.archive_loan, _archived),
    _archive_arguments,
)
RESTORE_ENTRY = Entry(
    button=CB.LOAN_RESTORE, usage=texts.RESTORE_USAGE, role=Role.ADMIN, what="restore loans"
)
RESTORE = Confirm(
    CB.RESTORE_CONFIRM,
    texts.BTN_RESTORE,
    Change(loan_service.restore_loan, _restored),
    lambda context, actor, version: _reasoned(context, actor),  # a restore has no version
)


@require_staff
async def archive_entry(update: Update, context: Context, actor: Actor) -> int:
    """/archive <number>, /delete <number> or Archive on a card (admins): ask the reason."""
    view = await loan_action.load(update, context, actor, ARCHIVE_ENTRY)
    if view is None:
        return actions.END
    if view.archived_at is not None:
        already = Conflict(f"Loan {view.loan_number} is archived already.", code="loan_archived")
        await actions.say(update, texts.service_error(already))
        return actions.END
    text = texts.archive_ask(texts.ARCHIVE_ASK, view.loan_number, view.borrower_name)
    return await loan_action.start(update, context, NAME, view, text, State.ARCHIVE_REASON)


@actions.step(NAME)
async def archive_reason(update: Update, context: Context, actor: Actor) -> int:
    """The reason typed: check it with the service (nothing written), then confirm."""
    ask = Ask(texts.ARCHIVE_ASK_AGAIN, State.ARCHIVE_REASON)
    then = State.ARCHIVE
    return await _reason_step(update, context, actor, ARCHIVE, ask, then, texts.ARCHIVE_CONFIRM)


@actions.step(NAME)
async def archive_confirmed(update: Update, context: Context, actor: Actor) -> int | None:
    """Archive pressed: archive the loan with the reason; the admin sees its archived card."""
    return await loan_action.confirmed(update, context, actor, ARCHIVE)


@require_staff
async def restore_entry(update: Update, context: Context, actor: Actor) -> int:
    """/restore <number> or Restore on an archived loan's card (admins): ask the reason."""
    view = await loan_action.load(update, context, actor, RESTORE_ENTRY)
    if view is None:
        return actions.END
    if view.archived_at is None:
        await actions.say(update, texts.loan_done(texts.RESTORE_NOT_ARCHIVED, view.loan_number))
        return actions.END
    text = texts.archive_ask(
        texts.RESTORE_ASK, view.loan_number, view.borrower_name, view.archive_reason or "-"
    )
    return await loan_action.start(update, context, NAME, view, text, State.RESTORE_REASON)


@actions.step(NAME)
async def restore_reason(update: Update, context: Context, actor: Actor) -> int:
    """The reason typed: check it, then confirm."""
    ask = Ask(texts.ARCHIVE_ASK_AGAIN, State.RESTORE_REASON)
    then = State.RESTORE
    return await _reason_step(update, context, actor, RESTORE, ask, then, texts.RESTORE_CONFIRM)


@actions.step(NAME)
async def restore_confirmed(update: Update, context: Context, actor: Actor) -> int | None:
    """Restore pressed: the loan is back in every list; its fresh card follows."""
    return await loan_action.confirmed(update, context, actor, RESTORE)


async def _reason_step(
    update: Update,
    context: Context,
    actor: Actor,
    confirm: Confirm,
    ask: Ask,
    then: State,
    template: str,
) -> int:
    """A reason for archive or restore: dry-run the service with it; ask again or confirm."""
    data = user_data(context)
    data[REASON] = text_of(update)
    arguments = _reasoned(context, actor)
    got = await loan_action.preview(
        update, context, actor, confirm.change.service, arguments, (ask,)
    )
    if isinstance(got, int):
        return got
    text = texts.archive_confirm(template, data[NUMBER], data[REASON].strip())
    await loan_action.ask_confirm(update, context, confirm, text)
    return then
