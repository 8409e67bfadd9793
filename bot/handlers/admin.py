"""Admin commands: /invite, /requests (and the Approve/Reject buttons), /staff, /audit.

The services check who may do what; these handlers only translate and show.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot import keyboards, paging, texts
from bot.context import (
    Context,
    answer_button,
    dashboards_url,
    db,
    reply,
    require_staff,
    reset_menu,
    set_menu_for,
    settings_of,
)
from bot.keyboards import CB
from bot.updates import query_of
from db.models import Role, StaffState
from db.services.access import Actor
from db.services.audit import read as auditlog
from db.services.errors import Conflict, ServiceError
from db.services.staff import members as staff_service
from db.services.staff.members import StaffInfo

log = logging.getLogger(__name__)

AUDIT_LIMIT = 20
MAX_REQUESTS_SHOWN = 20


def handlers() -> list[BaseHandler]:
    """Admin commands and their buttons, in the order app.py registers them."""
    return [
        CommandHandler("invite", invite),
        CommandHandler("requests", requests),
        CommandHandler("staff", staff),
        CommandHandler("audit", audit),
        CallbackQueryHandler(decide_button, pattern=r"^acc:(ok|no):"),
        CallbackQueryHandler(staff_button, pattern=r"^stf:"),
    ]


@require_staff
async def invite(update: Update, context: Context, actor: Actor) -> None:
    """/invite <role>: a one-time code and its t.me deep link."""
    try:
        role = Role((context.args or [""])[0].strip().lower())
    except ValueError:
        await reply(update, texts.INVITE_USAGE)
        return
    settings = settings_of(context)
    try:
        made = await db(
            context,
            staff_service.create_invite,
            actor=actor,
            role=role,
            valid_hours=settings.invite_valid_hours,
        )
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    link = f"https://t.me/{context.bot.username}?start={made.code}"
    expires = texts.local_time(made.expires_at, settings.tz)
    await reply(update, texts.invite_created(made.code, link, made.role, expires))


@require_staff
async def requests(update: Update, context: Context, actor: Actor) -> None:
    """/requests: each pending access request with Approve/Reject."""
    try:
        pending = await db(context, staff_service.list_requests, actor=actor)
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    if not pending:
        await reply(update, texts.NO_REQUESTS)
        return
    tz = settings_of(context).tz
    for info in pending[:MAX_REQUESTS_SHOWN]:
        await reply(
            update,
            texts.request_line(info.name, info.username, texts.local_time(info.created_at, tz)),
            reply_markup=keyboards.access_decision(info.id),
        )


@require_staff
async def decide_button(update: Update, context: Context, actor: Actor) -> None:
    """Approve/Reject pressed: decide once, tell the requester; a second press is refused."""
    query = query_of(update)
    data = query.data or ""  # no data: not one of our buttons, refused below
    approve = data.startswith(CB.ACCESS_APPROVE)
    ids = keyboards.parse_ids(data, CB.ACCESS_APPROVE if approve else CB.ACCESS_REJECT)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    try:
        info = await db(
            context, staff_service.decide_access, actor=actor, staff_id=ids[0], approve=approve
        )
    except Conflict:
        await answer_button(update, texts.ALREADY_DECIDED)
        return
    except ServiceError as err:
        await answer_button(update, err.message)
        return
    await query.answer()
    await query.edit_message_text(texts.access_decided_for_admin(info.name, approve, actor.name))
    await _tell_requester(context, info, approve)


async def _tell_requester(context: Context, info: StaffInfo, approved: bool) -> None:
    if info.chat_id is None:
        return
    try:
        await context.bot.send_message(
            info.chat_id, texts.ACCESS_APPROVED if approved else texts.ACCESS_REJECTED
        )
    except TelegramError as exc:
        log.warning("could not tell staff %s about the decision: %s", info.id, exc)
    if approved:
        await set_menu_for(context.bot, info, app_url=dashboards_url(context))


@require_staff
async def staff(update: Update, context: Context, actor: Actor) -> None:
    """/staff: the staff list; admins get a button per person to manage them."""
    try:
        people = await db(context, staff_service.list_staff, actor=actor)
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    if not people:
        await reply(update, texts.NO_STAFF)
    elif actor.role == Role.ADMIN:
        await reply(update, texts.STAFF_LIST_HEADER, reply_markup=_list_keyboard(people))
    else:
        lines = [texts.esc(texts.staff_line(p.name, p.role, p.state.value)) for p in people]
        await paging.reply_pages(update, lines)


def _list_keyboard(people: list[StaffInfo]):
    return keyboards.staff_list(
        [(p.id, texts.staff_line(p.name, p.role, p.state.value)) for p in people]
    )


async def _show_list(update: Update, context: Context, actor: Actor) -> None:
    people = await db(context, staff_service.list_staff, actor=actor)
    await query_of(update).answer()
    await query_of(update).edit_message_text(
        texts.STAFF_LIST_HEADER, reply_markup=_list_keyboard(people)
    )


async def _show_card(update: Update, context: Context, actor: Actor, staff_id: int) -> None:
    people = await db(context, staff_service.list_staff, actor=actor)
    info = next((p for p in people if p.id == staff_id), None)
    if info is None:
        await answer_button(update, texts.OLD_BUTTON)
        return
    tz = settings_of(context).tz
    last = texts.local_time(info.last_login_at, tz) if info.last_login_at else "never"
    await query_of(update).answer()
    await query_of(update).edit_message_text(
        texts.staff_card(info.name, info.username, info.role, info.state.value, last),
        reply_markup=keyboards.staff_actions(info.id, info.role, info.state == StaffState.ACTIVE),
    )


@require_staff
async def staff_button(update: Update, context: Context, actor: Actor) -> None:
    """A /staff button: open a card, go back, disable/enable, or change a role."""
    raw = query_of(update).data or ""  # no data: not one of our buttons
    try:
        if raw.startswith(CB.STAFF_LIST):
            await _show_list(update, context, actor)
            return
        target = await _staff_action(update, context, actor, raw)
    except ServiceError as err:
        await answer_button(update, err.message)
        return
    if target is not None:
        await _show_card(update, context, actor, target)


async def _staff_action(update: Update, context: Context, actor: Actor, raw: str) -> int | None:
    """Do what the button says; return whose card to show, or None for a bad payload."""
    if ids := keyboards.parse_ids(raw, CB.STAFF_SHOW):
        return ids[0]
    for prefix, enabled in ((CB.STAFF_DISABLE, False), (CB.STAFF_ENABLE, True)):
        if ids := keyboards.parse_ids(raw, prefix):
            info = await db(
                context, staff_service.set_state, actor=actor, staff_id=ids[0], enabled=enabled
            )
            await _after_change(context, info)
            return info.id
    if parsed := keyboards.parse_role(raw, CB.STAFF_ROLE):
        info = await db(
            context, staff_service.change_role, actor=actor, staff_id=parsed[0], role=parsed[1]
        )
        await _after_change(context, info)
        return info.id
    await answer_button(update, texts.BAD_BUTTON)
    return None


async def _after_change(context: Context, info: StaffInfo) -> None:
    # The changed person's menu follows their new role or state at once.
    if info.state == StaffState.ACTIVE:
        await set_menu_for(context.bot, info, app_url=dashboards_url(context))
    elif info.chat_id is not None:
        await reset_menu(context.bot, info.chat_id, app_url=dashboards_url(context))


@require_staff
async def audit(update: Update, context: Context, actor: Actor) -> None:
    """/audit [name]: the latest 20 audit events, of everyone or of one staff member."""
    who = " ".join(context.args or [])
    try:
        ref = await db(context, auditlog.find_audited_staff, actor=actor, text=who) if who else None
        entries = await db(
            context,
            auditlog.recent_audit,
            actor=actor,
            staff_id=ref.id if ref else None,
            limit=AUDIT_LIMIT,
        )
    except ServiceError as err:
        await reply(update, texts.service_error(err))
        return
    if not entries:
        await reply(update, texts.NO_AUDIT)
        return
    tz = settings_of(context).tz
    lines = [
        texts.audit_line(
            texts.local_time(e.created_at, tz),
            e.staff_name or (f"user {e.telegram_user_id}" if e.telegram_user_id else "system"),
            e.action,
            f"{e.target_type} {e.target_id}" if e.target_type and e.target_id else "",
        )
        for e in entries
    ]
    await paging.reply_pages(
        update, lines, head=texts.audit_header(len(entries), ref.name if ref else None)
    )
