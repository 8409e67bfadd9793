"""Approvals in the chat: Approve on a card, /approvals, a request's card, Withdraw.

Reject asks a reason first: bot/conversations/reject_approval.py. The cards themselves
are sent and brought up to date by bot/approval_jobs.py; after a decision here that job's
after_decision runs at once, so the other approvers' cards and the requester hear of it
without waiting for the next run.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot import approval_jobs, keyboards, texts
from bot.context import Context, db, reply, require_staff, settings_of
from bot.handlers.replies import pressed, today
from bot.keyboards import CB
from bot.updates import chat_of
from db.models import ApprovalState, Role
from db.services.access import Actor
from db.services.approvals import decide as decisions
from db.services.approvals import requests
from db.services.errors import ServiceError

log = logging.getLogger(__name__)

PAGE = 10


def handlers() -> list[BaseHandler]:
    """The approval commands and buttons (Reject is a conversation of its own)."""
    return [
        CommandHandler("approvals", approvals),
        CallbackQueryHandler(approve_button, pattern=keyboards.pattern(CB.APPROVAL_OK)),
        CallbackQueryHandler(show_button, pattern=keyboards.pattern(CB.APPROVAL_SHOW)),
        CallbackQueryHandler(withdraw_button, pattern=keyboards.pattern(CB.APPROVAL_WITHDRAW)),
        CallbackQueryHandler(page_button, pattern=keyboards.pattern(CB.APPROVAL_PAGE)),
    ]


@require_staff
async def approve_button(update: Update, context: Context, actor: Actor) -> None:
    """Approve pressed: the first decision wins; a late or forbidden press is told why."""
    ids = await pressed(update, CB.APPROVAL_OK)
    if ids is None:
        return
    try:
        await db(
            context,
            decisions.decide,
            actor=actor,
            approval_id=ids[0],
            approve=True,
            today=today(context),
        )
    except ServiceError as err:
        await _say(update, texts.service_error(err))
        return
    await approval_jobs.after_decision(context)


async def _say(update: Update, text: str, **kwargs: Any) -> None:
    """Send text to the chat: a pressed button was answered already (by pressed())."""
    if update.callback_query is None:
        await reply(update, text, **kwargs)
    else:
        await chat_of(update).send_message(text, **kwargs)


@require_staff
async def approvals(update: Update, context: Context, actor: Actor) -> None:
    """/approvals: the pending requests (an agent's own; every one for approvers), paged."""
    await _page(update, context, actor, 1)


@require_staff
async def page_button(update: Update, context: Context, actor: Actor) -> None:
    ids = await pressed(update, CB.APPROVAL_PAGE)
    if ids is not None:
        await _page(update, context, actor, ids[0])


async def _page(update: Update, context: Context, actor: Actor, page: int) -> None:
    found = await db(
        context, requests.list_pending, actor=actor, limit=PAGE + 1, offset=(page - 1) * PAGE
    )
    if not found:
        await _say(update, texts.APPROVALS_NONE)
        return
    tz = settings_of(context).tz
    shown = found[:PAGE]
    lines = [
        texts.approval_line(
            v.id,
            v.kind.value,
            v.loan_number or "",
            v.borrower_name or "",
            v.requested_by,
            texts.local_time(v.created_at, tz),
        )
        for v in shown
    ]
    markup = keyboards.approvals_page([v.id for v in shown], page, len(found) > PAGE)
    await _say(update, "\n".join([texts.APPROVALS_HEAD, *lines]), reply_markup=markup)


@require_staff
async def show_button(update: Update, context: Context, actor: Actor) -> None:
    """A request's card: Approve / Reject for an approver, Withdraw for its requester."""
    ids = await pressed(update, CB.APPROVAL_SHOW)
    if ids is None:
        return
    try:
        view = await db(context, requests.get_request, approval_id=ids[0])
    except ServiceError as err:
        await _say(update, texts.service_error(err))
        return
    text = approval_jobs.card_text(context, view, None, None)
    markup = None
    if view.state is ApprovalState.PENDING and view.requested_by_id == actor.staff_id:
        markup = keyboards.approval_withdraw(view.id)
    elif view.state is ApprovalState.PENDING and actor.at_least(view.approver_role):
        markup = keyboards.approval_decision(view.id)
    elif view.state is not ApprovalState.PENDING:
        who = view.decided_by or view.requested_by
        text = texts.approval_decided(text, view.state.value, who, view.reason)
    if not actor.at_least(Role.MANAGER) and view.requested_by_id != actor.staff_id:
        text = texts.APPROVALS_NONE  # an agent sees only their own requests
        markup = None
    await _say(update, text, reply_markup=markup)


@require_staff
async def withdraw_button(update: Update, context: Context, actor: Actor) -> None:
    """Withdraw pressed by the requester: the approvers' cards say so."""
    ids = await pressed(update, CB.APPROVAL_WITHDRAW)
    if ids is None:
        return
    try:
        await db(context, requests.withdraw, actor=actor, approval_id=ids[0])
    except ServiceError as err:
        await _say(update, texts.service_error(err))
        return
    await _say(update, texts.APPROVAL_WITHDRAWN_DONE.format(id=ids[0]))
    await approval_jobs.after_decision(context)
