"""Reassigning a loan (managers): /assign, and the card's Reassign button with one button
per active agent or manager. No conversation: each button carries the loan, the version
the list was made for, and the new holder, so an old list acts on nothing that changed.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot import keyboards, texts
from bot.context import Context, answer_button, db, require_staff
from bot.conversations import actions
from bot.handlers.loans import show_card
from bot.keyboards import CB
from bot.updates import query_of
from db.models import Role, StaffState
from db.services.access import Actor
from db.services.errors import ServiceError
from db.services.loans import add as loan_service
from db.services.staff import members as staff_service

log = logging.getLogger(__name__)

MAX_HOLDERS_SHOWN = 30  # buttons; /assign reaches everyone else


def handlers() -> list[BaseHandler]:
    """/assign and the reassign buttons, in the order app.py adds them."""
    return [
        CommandHandler("assign", assign_command),
        CallbackQueryHandler(assign_button, pattern=keyboards.pattern(CB.LOAN_ASSIGN)),
        CallbackQueryHandler(assign_to_button, pattern=keyboards.pattern(CB.ASSIGN_TO)),
    ]


@require_staff
async def assign_command(update: Update, context: Context, actor: Actor) -> None:
    """/assign <number> <agent name, @username or staff number> (managers)."""
    args = context.args or []
    if len(args) < 2:
        await actions.say(update, texts.ASSIGN_USAGE)
        return
    try:
        holder = await db(context, staff_service.find_staff, actor=actor, text=" ".join(args[1:]))
        view = await db(
            context,
            loan_service.reassign_loan,
            actor=actor,
            loan_number=args[0],
            agent_id=holder.id,
            today=actions.today_of(context),
        )
    except ServiceError as err:
        await actions.say(update, texts.service_error(err))
        return
    await actions.say(update, texts.assign_done(view.loan_number, view.agent_name))
    await show_card(update, context, actor, view.id)


@require_staff
async def assign_button(update: Update, context: Context, actor: Actor) -> None:
    """Reassign on a card (managers): one button per active agent or manager."""
    if not await actions.allowed(update, actor, Role.MANAGER, "reassign loans"):
        return
    view = await actions.loan_of_button(update, context, actor, CB.LOAN_ASSIGN)
    if view is None:
        return
    people = [
        p
        for p in await db(context, staff_service.list_staff, actor=actor)
        if p.state == StaffState.ACTIVE
        and p.role in (Role.AGENT, Role.MANAGER)
        and p.id != view.agent_id
    ]
    if not people:
        await actions.say(update, texts.ASSIGN_NOBODY)
        return
    shown = people[:MAX_HOLDERS_SHOWN]
    choices = [(p.id, f"{p.name} · {p.role.value}") for p in shown]
    await actions.say(
        update,
        texts.assign_ask(
            view.loan_number, view.agent_name, len(shown) if len(people) > len(shown) else 0
        ),
        reply_markup=keyboards.assign_choices(view.id, view.version, choices),
    )


@require_staff
async def assign_to_button(update: Update, context: Context, actor: Actor) -> None:
    """A holder pressed: reassign, unless the loan changed since the list was shown."""
    ids = keyboards.parse_ids(query_of(update).data, CB.ASSIGN_TO, 3)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    loan_id, version, holder = ids
    try:
        view = await db(
            context,
            loan_service.get_loan_by_id,
            actor=actor,
            loan_id=loan_id,
            today=actions.today_of(context),
        )
        if view.version != version:
            await query_of(update).answer()
            await show_card(
                query_of(update), context, actor, loan_id, note=texts.LOAN_CHANGED, edit=True
            )
            return
        view = await db(
            context,
            loan_service.reassign_loan,
            actor=actor,
            loan_number=view.loan_number,
            agent_id=holder,
            today=actions.today_of(context),
        )
    except ServiceError as err:
        await answer_button(update, err.message)
        return
    await query_of(update).answer()
    await query_of(update).edit_message_text(texts.assign_done(view.loan_number, view.agent_name))
    await show_card(update, context, actor, view.id)
