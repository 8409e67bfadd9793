"""Lists of loans: /find (a search), /list (filtered pages) and /today, and their page buttons.

Paging state lives in user_data under short keys (a search's text, a list's cursors);
buttons carry only page numbers. When that state is gone (another conversation cleared it,
or the button is old) a page button shows the first page afresh.
"""

from __future__ import annotations

from enum import IntEnum

from telegram import Update
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)

from bot import keyboards, paging, texts, views
from bot.context import Context, agency_of, answer_button, db, reply, require_staff, settings_of
from bot.conversations import TEXT_INPUT, cancel_fallback
from bot.handlers.replies import show, today
from bot.keyboards import CB
from bot.updates import message_of, query_of, user_data
from db.models import Role
from db.services import reports
from db.services.access import Actor
from db.services.errors import ServiceError
from db.services.loans import add as loan_service
from db.services.loans.add import LoanFilter

PAGE = 8  # loans per search or list page: each is a button, a phone shows about that many
TODAY_LIMIT = 30
FIND_KEY = "lnf"  # the last search's text
LIST_KEY = "lnl"  # {"f": filter, "c": [after-cursor of each page seen]}
_FILTER_LABELS = dict([*keyboards.LIST_FILTERS, keyboards.ARCHIVED_FILTER])


class FindState(IntEnum):
    QUERY = 1


def find_handler() -> ConversationHandler:
    """/find with the text, or /find and then the text."""
    return ConversationHandler(
        entry_points=[CommandHandler("find", find_command)],
        states={FindState.QUERY: [MessageHandler(TEXT_INPUT, find_text)]},
        fallbacks=[cancel_fallback()],
        name="find_loan",
        persistent=True,
        allow_reentry=True,
    )


def handlers() -> list[BaseHandler]:
    """/list, /today and the search / list page buttons, in the order app.py adds them."""
    return [
        CommandHandler("list", list_command),
        CommandHandler("today", today_command),
        CallbackQueryHandler(find_page_button, pattern=keyboards.pattern(CB.LOAN_FIND_PAGE)),
        CallbackQueryHandler(list_page_button, pattern=keyboards.pattern(CB.LOAN_LIST_PAGE)),
    ]


# --- /find --------------------------------------------------------------------------------


@require_staff
async def find_command(update: Update, context: Context, actor: Actor) -> int:
    """/find <text> searches at once; /find alone asks what to look for."""
    query = " ".join(context.args or [])
    if not query:
        await reply(update, texts.FIND_ASK)
        return FindState.QUERY
    await _find_page(update, context, actor, query, page=1, edit=False)
    return ConversationHandler.END


@require_staff
async def find_text(update: Update, context: Context, actor: Actor) -> int:
    """The text to look for, after /find."""
    await _find_page(update, context, actor, message_of(update).text or "", page=1, edit=False)
    return ConversationHandler.END


@require_staff
async def find_page_button(update: Update, context: Context, actor: Actor) -> None:
    """lnf:<page>: More / Back through the last search, edited in place."""
    ids = keyboards.parse_ids(query_of(update).data, CB.LOAN_FIND_PAGE)
    query = user_data(context).get(FIND_KEY)
    if ids is None or not query:
        await answer_button(update, texts.BAD_BUTTON if ids is None else texts.FIND_OVER)
        return
    await query_of(update).answer()
    await _find_page(update, context, actor, query, page=ids[0], edit=True)


async def _find_page(
    update: Update, context: Context, actor: Actor, query: str, *, page: int, edit: bool
) -> None:
    settings = settings_of(context)
    try:
        found, more = await db(
            context,
            loan_service.search_loans,
            actor=actor,
            text=query,
            today=today(context),
            limit=PAGE,
            offset=(page - 1) * PAGE,
            region=settings.default_phone_region,
        )
    except ServiceError as err:
        await show(update, context, texts.service_error(err), None, edit)
        return
    user_data(context)[FIND_KEY] = query
    if not found:
        await show(update, context, texts.find_none(query), None, edit)
        return
    text = views.find_title(query, (page - 1) * PAGE, len(found))
    markup = keyboards.search_results(views.loan_buttons(found, agency_of(context)), page, more)
    await show(update, context, text, markup, edit)


# --- /list and /today -------------------------------------------------------------------------


@require_staff
async def list_command(update: Update, context: Context, actor: Actor) -> None:
    """/list: the first page of all the actor's loans, with filter buttons."""
    user_data(context).pop(LIST_KEY, None)
    await _list_page(update, context, actor, LoanFilter.ALL, page=1, edit=False)


@require_staff
async def list_page_button(update: Update, context: Context, actor: Actor) -> None:
    """lnl:<filter>:<page>: a filter or Prev / Next, edited in place."""
    fields = keyboards.parse_fields(query_of(update).data, CB.LOAN_LIST_PAGE, 2)
    if (
        fields is None
        or fields[0] not in _FILTER_LABELS
        or not fields[1].isdigit()
        or not 0 < int(fields[1]) < 10_000
    ):
        await answer_button(update, texts.BAD_BUTTON)
        return
    await query_of(update).answer()
    await _list_page(update, context, actor, LoanFilter(fields[0]), int(fields[1]), edit=True)


async def _list_page(
    update: Update, context: Context, actor: Actor, filter: LoanFilter, page: int, edit: bool
) -> None:
    """Page `page` of a filter, from the after-cursors kept for it (page 1 when gone)."""
    saved = user_data(context).get(LIST_KEY) or {}
    cursors = saved.get("c", [None]) if saved.get("f") == filter.value else [None]
    if page > len(cursors):
        page = 1
    try:
        found = await db(
            context,
            loan_service.list_loans,
            actor=actor,
            today=today(context),
            filter=filter,
            after=cursors[page - 1],
            limit=PAGE,
        )
    except ServiceError as err:
        await show(update, context, texts.service_error(err), None, edit)
        return
    cursors = cursors[:page] + ([found.next_cursor] if found.next_cursor else [])
    user_data(context)[LIST_KEY] = {"f": filter.value, "c": cursors}
    text = views.list_title(_FILTER_LABELS[filter.value], page, actor.sees_all_loans)
    if not found.items:
        text += "\n" + texts.LIST_EMPTY
    loans = views.loan_buttons(found.items, agency_of(context))
    markup = keyboards.loan_list(
        loans, filter.value, page, found.next_cursor is not None, archived=actor.role is Role.ADMIN
    )
    await show(update, context, text, markup, edit)


@require_staff
async def today_command(update: Update, context: Context, actor: Actor) -> None:
    """/today: what to work on today, each loan a button to its card."""
    items = await db(
        context, reports.work_list, actor=actor, today=today(context), limit=TODAY_LIMIT
    )
    agency = agency_of(context)
    markup = keyboards.loan_buttons(views.loan_buttons([i.loan for i in items], agency))
    if not items:
        await reply(update, texts.TODAY_EMPTY)
        return
    head, *lines = views.today_text(items, agency).split("\n")
    await paging.reply_pages(update, lines, head=head, reply_markup=markup)
