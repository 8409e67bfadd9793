"""Looking one loan up: /loan (the card), /history and the card / history buttons.

A history's cursors live in user_data under a short key; buttons carry only ids and page
numbers. When that state is gone (another conversation cleared it, or the button is old) a
page button shows the newest page afresh. /find, /list and /today are in lists.py.
"""

from __future__ import annotations

from telegram import CallbackQuery, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot import keyboards, texts, views
from bot.context import Context, agency_of, db, reply, require_staff
from bot.handlers.replies import command_text, pressed, show, today
from bot.keyboards import CB
from bot.updates import user_data
from db.services import risk
from db.services.access import Actor
from db.services.errors import NotFound, ServiceError
from db.services.loans import add as loan_service
from db.services.loans.snapshots import LoanView

HISTORY_PAGE = 10
HISTORY_KEY = "lnh"  # {"id": loan id, "c": [before-cursor of each page seen]}


def handlers() -> list[BaseHandler]:
    """The card and history commands and buttons, in the order app.py adds them."""
    return [
        CommandHandler("loan", loan_command),
        CommandHandler("history", history_command),
        CallbackQueryHandler(card_button, pattern=keyboards.pattern(CB.LOAN_CARD)),
        CallbackQueryHandler(history_button, pattern=keyboards.pattern(CB.LOAN_HISTORY)),
        CallbackQueryHandler(history_page_button, pattern=keyboards.pattern(CB.LOAN_HISTORY_PAGE)),
    ]


async def _card(
    update_or_query, context: Context, actor: Actor, view: LoanView, note: str | None, edit: bool
) -> None:
    scored = await db(context, risk.loan_risk, actor=actor, loan_id=view.id, today=today(context))
    text = views.card(view, agency_of(context), note, scored)
    await show(update_or_query, context, text, keyboards.loan_card(view, actor.role), edit)


async def show_card(
    update_or_query: Update | CallbackQuery,
    context: Context,
    actor: Actor,
    loan_id: int,
    note: str | None = None,
    edit: bool = False,
) -> LoanView | None:
    """(Re)show a loan's card with fresh data; note is plain text shown above it (escaped here).

    edit=True edits the pressed button's message in place (a new message when it cannot be
    edited). The caller answers its callback query. A loan the actor may not see gets the
    same "not found" sentence as a missing one and None is returned.
    """
    try:
        view = await db(
            context, loan_service.get_loan_by_id, actor=actor, loan_id=loan_id, today=today(context)
        )
    except NotFound as err:
        await show(update_or_query, context, texts.service_error(err), None, edit)
        return None
    await _card(update_or_query, context, actor, view, note, edit)
    return view


# --- the card -------------------------------------------------------------------------------


@require_staff
async def loan_command(update: Update, context: Context, actor: Actor) -> None:
    """/loan <number>: the loan's card."""
    number = await command_text(update, context, texts.LOAN_USAGE)
    if number is None:
        return
    try:
        view = await db(
            context, loan_service.get_loan, actor=actor, loan_number=number, today=today(context)
        )
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    await _card(update, context, actor, view, None, edit=False)


@require_staff
async def card_button(update: Update, context: Context, actor: Actor) -> None:
    """ln:card:<id>: the card as it is now, in a new message."""
    ids = await pressed(update, CB.LOAN_CARD)
    if ids is None:
        return
    await show_card(update, context, actor, ids[0])


# --- history ----------------------------------------------------------------------------------


async def _history_page(
    update: Update,
    context: Context,
    actor: Actor,
    *,
    page: int,
    edit: bool,
    loan_id: int | None = None,
    number: str | None = None,
) -> None:
    """Show history page `page` (1 = newest) from the cursors kept for this loan."""
    saved = user_data(context).get(HISTORY_KEY) or {}
    cursors = saved.get("c", [None]) if loan_id and saved.get("id") == loan_id else [None]
    if page > len(cursors):
        page = 1  # the page's cursor is gone: start from the newest again
    try:
        got = await db(
            context,
            loan_service.loan_with_history,
            actor=actor,
            today=today(context),
            agency=agency_of(context),
            limit=HISTORY_PAGE,
            loan_id=loan_id,
            loan_number=number,
            before=cursors[page - 1],
        )
    except ServiceError as err:
        await show(update, context, texts.service_error(err), None, edit)
        return
    view, found = got.loan, got.history
    text, shown = views.history_page(view.loan_number, found.items, page, agency_of(context))
    # A page too long for one message shows fewer lines: the next page starts after them.
    after = found.items[shown - 1].cursor if shown < len(found.items) else found.next_cursor
    cursors = cursors[:page] + ([after] if after else [])
    user_data(context)[HISTORY_KEY] = {"id": view.id, "c": cursors}
    markup = keyboards.history_nav(view.id, page, after is not None)
    await show(update, context, text, markup, edit)


@require_staff
async def history_command(update: Update, context: Context, actor: Actor) -> None:
    """/history <number>: the newest page of the loan's history."""
    number = await command_text(update, context, texts.HISTORY_USAGE)
    if number is None:
        return
    await _history_page(update, context, actor, page=1, edit=False, number=number)


@require_staff
async def history_button(update: Update, context: Context, actor: Actor) -> None:
    """ln:his:<id>:<version> on a card: the newest history page (any version will do)."""
    ids = await pressed(update, CB.LOAN_HISTORY, 2)
    if ids is None:
        return
    await _history_page(update, context, actor, page=1, edit=False, loan_id=ids[0])


@require_staff
async def history_page_button(update: Update, context: Context, actor: Actor) -> None:
    """lnh:<id>:<page>: Older / Newer, edited in place."""
    ids = await pressed(update, CB.LOAN_HISTORY_PAGE, 2)
    if ids is None:
        return
    await _history_page(update, context, actor, page=ids[1], edit=True, loan_id=ids[0])
