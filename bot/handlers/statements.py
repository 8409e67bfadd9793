"""/statement <loan> and the card's Statement button: the loan's account statement as a PDF.

The statement is gathered (and audited) in one transaction within the actor's scope, then
drawn in a worker thread, and sent as a document.
"""

from __future__ import annotations

import asyncio
from datetime import date

from sqlalchemy.orm import Session
from telegram import InputFile, Update
from telegram.ext import CallbackQueryHandler, CommandHandler

from bot import keyboards, texts
from bot.context import Context, agency_of, answer_button, db, reply, require_staff, settings_of
from bot.keyboards import CB
from bot.updates import chat_of, query_of
from db import clock
from db.agency import Agency
from db.services.access import Actor
from db.services.errors import ServiceError
from db.services.loans.cards import get_loan_by_id
from db.services.statements.data import Statement, statement_for_staff
from db.services.statements.pdf import render_pdf, statement_filename


def handlers() -> list:
    return [
        CommandHandler("statement", statement_command),
        CallbackQueryHandler(statement_button, pattern=keyboards.pattern(CB.STATEMENT)),
    ]


def _by_id(
    session: Session, *, actor: Actor, loan_id: int, agency: Agency, today: date
) -> Statement:
    """The statement of the loan a button names (the card's own scope check first)."""
    view = get_loan_by_id(session, actor=actor, loan_id=loan_id, today=today)
    return statement_for_staff(
        session, actor=actor, loan_number=view.loan_number, agency=agency, today=today
    )


async def _send(update: Update, context: Context, fn, **kwargs) -> None:
    agency = agency_of(context)
    today = clock.today(settings_of(context).tz)
    try:
        made = await db(context, fn, agency=agency, today=today, **kwargs)
    except ServiceError as err:
        if update.callback_query is not None:
            await answer_button(update, err.message)
        else:
            await reply(update, texts.service_error(err))
        return
    if update.callback_query is not None:
        await update.callback_query.answer()
    pdf = await asyncio.to_thread(render_pdf, made, agency)
    await chat_of(update).send_document(
        document=InputFile(pdf, filename=statement_filename(agency, made)),
        caption=texts.statement_caption(made.loan_number, made.generated_on.isoformat()),
    )


@require_staff
async def statement_command(update: Update, context: Context, actor: Actor) -> None:
    """/statement <loan number>."""
    args = context.args or []
    if len(args) != 1:
        await reply(update, texts.STATEMENT_USAGE)
        return
    await _send(update, context, statement_for_staff, actor=actor, loan_number=args[0])


@require_staff
async def statement_button(update: Update, context: Context, actor: Actor) -> None:
    """The card's Statement button: <loan id>."""
    ids = keyboards.parse_ids(query_of(update).data, CB.STATEMENT, 1)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    await _send(update, context, _by_id, actor=actor, loan_id=ids[0])
