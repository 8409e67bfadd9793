"""Looking loans up: /find, /loan (the card), /history, /list, /today and their buttons.

Paging state lives in user_data under short keys (a search's text, a history's and a
list's cursors); buttons carry only ids and page numbers. When that state is gone (another
conversation cleared it, or the button is old) a page button shows the first page afresh.
"""

from __future__ import annotations

import logging
from enum import IntEnum

from telegram import CallbackQuery, InlineKeyboardMarkup, Update
from telegram.error import BadRequest
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
)

from bot import keyboards, texts, views
from bot.context import Context, answer_button, db, reply, require_staff, settings_of
from bot.conversations import TEXT_INPUT, cancel_fallback
from bot.keyboards import CB
from db import clock
from db.services import loans as loan_service
from db.services import reports
from db.services.access import Actor
from db.services.errors import NotFound, ServiceError
from db.services.loans import HistoryPage, LoanFilter
from db.services.views import LoanView

log = logging.getLogger(__name__)

PAGE = 8  # loans per search or list page: each is a button, a phone shows about that many
HISTORY_PAGE = 10
TODAY_LIMIT = 30
FIND_KEY = "lnf"  # the last search's text
HISTORY_KEY = "lnh"  # {"id": loan id, "c": [before-cursor of each page seen]}
LIST_KEY = "lnl"  # {"f": filter, "c": [after-cursor of each page seen]}
_FILTER_LABELS = dict(keyboards.LIST_FILTERS)


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
    """The lookup commands and the card / paging buttons, in the order app.py adds them."""
    return [
        CommandHandler("loan", loan_command),
        CommandHandler("history", history_command),
        CommandHandler("list", list_command),
        CommandHandler("today", today_command),
        CallbackQueryHandler(card_button, pattern=keyboards.pattern(CB.LOAN_CARD)),
        CallbackQueryHandler(history_button, pattern=keyboards.pattern(CB.LOAN_HISTORY)),
        CallbackQueryHandler(history_page_button,
                             pattern=keyboards.pattern(CB.LOAN_HISTORY_PAGE)),
        CallbackQueryHandler(find_page_button, pattern=keyboards.pattern(CB.LOAN_FIND_PAGE)),
        CallbackQueryHandler(list_page_button, pattern=keyboards.pattern(CB.LOAN_LIST_PAGE)),
    ]


def _today(context: Context):
    return clock.today(settings_of(context).tz)


def _fmt(context: Context) -> views.Fmt:
    return views.Fmt.of(settings_of(context))


async def _show(update_or_query: Update | CallbackQuery, context: Context, text: str,
                markup: InlineKeyboardMarkup | None, edit: bool) -> None:
    """Edit the pressed button's message when asked and possible; else send a new one."""
    query = (update_or_query.callback_query if isinstance(update_or_query, Update)
             else update_or_query)
    if edit and query is not None and query.message is not None:
        try:
            await query.edit_message_text(text, reply_markup=markup)
            return
        except BadRequest as exc:
            if "not modified" in exc.message.lower():
                return
            log.info("could not edit message, sending a new one: %s", exc)
    if isinstance(update_or_query, Update) and update_or_query.effective_chat is not None:
        chat_id = update_or_query.effective_chat.id
    else:
        chat_id = query.message.chat.id if query.message else query.from_user.id
    await context.bot.send_message(chat_id, text, reply_markup=markup)


async def _card(update_or_query, context: Context, actor: Actor, view: LoanView,
                note: str | None, edit: bool) -> None:
    text = views.card(view, _fmt(context), note)
    await _show(update_or_query, context, text, keyboards.loan_card(view, actor.role), edit)


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
        view = await db(context, loan_service.get_loan_by_id, actor=actor, loan_id=loan_id,
                        today=_today(context))
    except NotFound as err:
        await _show(update_or_query, context, texts.service_error(err), None, edit)
        return None
    await _card(update_or_query, context, actor, view, note, edit)
    return view


async def command_text(update: Update, context: Context, usage: str) -> str | None:
    """The command's arguments as one text; when there are none, say usage and None."""
    text = " ".join(context.args or [])
    if not text:
        await reply(update, usage)
        return None
    return text


async def _pressed(update: Update, prefix: CB, count: int = 1) -> list[int] | None:
    """The ids of the pressed button (answered); a forged one is answered so and None."""
    ids = keyboards.parse_ids(update.callback_query.data, prefix, count)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return None
    await update.callback_query.answer()
    return ids


# --- the card -------------------------------------------------------------------------------


@require_staff
async def loan_command(update: Update, context: Context, actor: Actor) -> None:
    """/loan <number>: the loan's card."""
    number = await command_text(update, context, texts.LOAN_USAGE)
    if number is None:
        return
    try:
        view = await db(context, loan_service.get_loan, actor=actor, loan_number=number,
                        today=_today(context))
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    await _card(update, context, actor, view, None, edit=False)


@require_staff
async def card_button(update: Update, context: Context, actor: Actor) -> None:
    """ln:card:<id>: the card as it is now, in a new message."""
    ids = await _pressed(update, CB.LOAN_CARD)
    if ids is None:
        return
    await show_card(update, context, actor, ids[0])


# --- history ----------------------------------------------------------------------------------


def _history(session, *, actor: Actor, today, currency: str, loan_id: int | None = None,
             number: str | None = None, before: str | None = None) -> tuple[LoanView, HistoryPage]:
    """The loan (by id or number, access-checked) and one page of its history."""
    if loan_id is not None:
        view = loan_service.get_loan_by_id(session, actor=actor, loan_id=loan_id, today=today)
    else:
        view = loan_service.get_loan(session, actor=actor, loan_number=number or "", today=today)
    page = loan_service.loan_history(session, actor=actor, loan_number=view.loan_number,
                                     limit=HISTORY_PAGE, before=before, currency=currency)
    return view, page


async def _history_page(update: Update, context: Context, actor: Actor, *, page: int,
                        edit: bool, loan_id: int | None = None, number: str | None = None) -> None:
    """Show history page `page` (1 = newest) from the cursors kept for this loan."""
    saved = context.user_data.get(HISTORY_KEY) or {}
    cursors = saved.get("c", [None]) if loan_id and saved.get("id") == loan_id else [None]
    if page > len(cursors):
        page = 1  # the page's cursor is gone: start from the newest again
    try:
        view, found = await db(context, _history, actor=actor, today=_today(context),
                               currency=settings_of(context).currency, loan_id=loan_id,
                               number=number, before=cursors[page - 1])
    except ServiceError as err:
        await _show(update, context, texts.service_error(err), None, edit)
        return
    cursors = cursors[:page] + ([found.next_cursor] if found.next_cursor else [])
    context.user_data[HISTORY_KEY] = {"id": view.id, "c": cursors}
    text = views.history_text(view.loan_number, found.items, page, _fmt(context))
    markup = keyboards.history_nav(view.id, page, found.next_cursor is not None)
    await _show(update, context, text, markup, edit)


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
    ids = await _pressed(update, CB.LOAN_HISTORY, 2)
    if ids is None:
        return
    await _history_page(update, context, actor, page=1, edit=False, loan_id=ids[0])


@require_staff
async def history_page_button(update: Update, context: Context, actor: Actor) -> None:
    """lnh:<id>:<page>: Older / Newer, edited in place."""
    ids = await _pressed(update, CB.LOAN_HISTORY_PAGE, 2)
    if ids is None:
        return
    await _history_page(update, context, actor, page=ids[1], edit=True, loan_id=ids[0])


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
    await _find_page(update, context, actor, update.message.text or "", page=1, edit=False)
    return ConversationHandler.END


@require_staff
async def find_page_button(update: Update, context: Context, actor: Actor) -> None:
    """lnf:<page>: More / Back through the last search, edited in place."""
    ids = keyboards.parse_ids(update.callback_query.data, CB.LOAN_FIND_PAGE)
    query = context.user_data.get(FIND_KEY)
    if ids is None or not query:
        await answer_button(update, texts.BAD_BUTTON if ids is None else texts.FIND_OVER)
        return
    await update.callback_query.answer()
    await _find_page(update, context, actor, query, page=ids[0], edit=True)


async def _find_page(update: Update, context: Context, actor: Actor, query: str, *,
                     page: int, edit: bool) -> None:
    settings = settings_of(context)
    try:
        found, more = await db(context, loan_service.search_loans, actor=actor, text=query,
                               today=_today(context), limit=PAGE, offset=(page - 1) * PAGE,
                               region=settings.default_phone_region)
    except ServiceError as err:
        await _show(update, context, texts.service_error(err), None, edit)
        return
    context.user_data[FIND_KEY] = query
    if not found:
        await _show(update, context, texts.find_none(query), None, edit)
        return
    text = views.find_title(query, (page - 1) * PAGE, len(found))
    markup = keyboards.search_results(views.loan_buttons(found, _fmt(context)), page, more)
    await _show(update, context, text, markup, edit)


# --- /list and /today -------------------------------------------------------------------------


@require_staff
async def list_command(update: Update, context: Context, actor: Actor) -> None:
    """/list: the first page of all the actor's loans, with filter buttons."""
    context.user_data.pop(LIST_KEY, None)
    await _list_page(update, context, actor, LoanFilter.ALL, page=1, edit=False)


@require_staff
async def list_page_button(update: Update, context: Context, actor: Actor) -> None:
    """lnl:<filter>:<page>: a filter or Prev / Next, edited in place."""
    fields = keyboards.parse_fields(update.callback_query.data, CB.LOAN_LIST_PAGE, 2)
    if (fields is None or fields[0] not in _FILTER_LABELS or not fields[1].isdigit()
            or not 0 < int(fields[1]) < 10_000):
        await answer_button(update, texts.BAD_BUTTON)
        return
    await update.callback_query.answer()
    await _list_page(update, context, actor, LoanFilter(fields[0]), int(fields[1]), edit=True)


async def _list_page(update: Update, context: Context, actor: Actor, filter: LoanFilter,
                     page: int, edit: bool) -> None:
    """Page `page` of a filter, from the after-cursors kept for it (page 1 when gone)."""
    saved = context.user_data.get(LIST_KEY) or {}
    cursors = saved.get("c", [None]) if saved.get("f") == filter.value else [None]
    if page > len(cursors):
        page = 1
    try:
        found = await db(context, loan_service.list_loans, actor=actor, today=_today(context),
                         filter=filter, after=cursors[page - 1], limit=PAGE)
    except ServiceError as err:
        await _show(update, context, texts.service_error(err), None, edit)
        return
    cursors = cursors[:page] + ([found.next_cursor] if found.next_cursor else [])
    context.user_data[LIST_KEY] = {"f": filter.value, "c": cursors}
    text = views.list_title(_FILTER_LABELS[filter.value], page, actor.sees_all_loans)
    if not found.items:
        text += "\n" + texts.LIST_EMPTY
    loans = views.loan_buttons(found.items, _fmt(context))
    markup = keyboards.loan_list(loans, filter.value, page, found.next_cursor is not None)
    await _show(update, context, text, markup, edit)


@require_staff
async def today_command(update: Update, context: Context, actor: Actor) -> None:
    """/today: what to work on today, each loan a button to its card."""
    items = await db(context, reports.work_list, actor=actor, today=_today(context),
                     limit=TODAY_LIMIT)
    fmt = _fmt(context)
    markup = keyboards.loan_buttons(views.loan_buttons([i.loan for i in items], fmt))
    await reply(update, views.today_text(items, fmt), reply_markup=markup if items else None)
