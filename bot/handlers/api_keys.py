"""/apikey new|list|revoke (admins): keys for the JSON API, and the revoke confirmation.

The service (db/services/staff/api_keys.py) checks the role and audits; the token is in
the chat once, in the answer to /apikey new, and stored nowhere but as its hash.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot import keyboards, texts
from bot.context import Context, answer_button, db, reply, require_staff, settings_of
from bot.keyboards import CB
from bot.updates import query_of
from db.services.access import Actor
from db.services.errors import ServiceError
from db.services.staff import api_keys
from db.services.staff.api_keys import ApiKeyInfo, ApiScope

log = logging.getLogger(__name__)

FOR = "for:"


def handlers() -> list[BaseHandler]:
    """The command and its buttons, in the order app.py registers them."""
    return [
        CommandHandler("apikey", apikey),
        CallbackQueryHandler(revoke_button, pattern=keyboards.pattern(CB.API_KEY_REVOKE)),
        CallbackQueryHandler(keep_button, pattern=keyboards.pattern(CB.API_KEY_KEEP)),
    ]


def _usage() -> str:
    return texts.apikey_usage([s.value for s in ApiScope])


@require_staff
async def apikey(update: Update, context: Context, actor: Actor) -> None:
    """/apikey new <name> [scope…] [for:<staff>] | list | revoke <id>."""
    args = context.args or []
    action = args[0].lower() if args else ""
    try:
        if action == "new" and len(args) >= 2:
            await _new(update, context, actor, args[1], args[2:])
        elif action == "list":
            await _list(update, context, actor)
        elif action == "revoke" and len(args) == 2 and args[1].isascii() and args[1].isdigit():
            await _ask_revoke(update, context, actor, int(args[1]))
        else:
            await reply(update, _usage())
    except ServiceError as err:
        await reply(update, texts.service_error(err))


async def _new(update: Update, context: Context, actor: Actor, name: str, rest: list[str]) -> None:
    holder = next((w[len(FOR) :] for w in rest if w.lower().startswith(FOR)), None)
    scopes = api_keys.parse_scopes([w for w in rest if not w.lower().startswith(FOR)])
    made = await db(
        context, api_keys.create_api_key, actor=actor, name=name, scopes=scopes, for_staff=holder
    )
    info = made.info
    log.info("API key %s made by staff %s for staff %s", info.id, actor.staff_id, info.staff_id)
    await reply(
        update,
        texts.apikey_created(
            info.id, info.name, made.token, _scopes(info), info.staff_name, info.role.value
        ),
    )


def _scopes(info: ApiKeyInfo) -> list[str]:
    return [s.value for s in info.scopes]


async def _list(update: Update, context: Context, actor: Actor) -> None:
    keys = await db(context, api_keys.list_api_keys, actor=actor)
    if not keys:
        await reply(update, texts.APIKEY_NONE)
        return
    tz = settings_of(context).tz
    lines = [
        texts.apikey_line(
            k.id,
            k.name,
            k.prefix,
            _scopes(k),
            k.staff_name,
            texts.local_time(k.last_used_at, tz) if k.last_used_at else None,
        )
        for k in keys
    ]
    await reply(update, texts.apikey_list(lines))


async def _ask_revoke(update: Update, context: Context, actor: Actor, key_id: int) -> None:
    info = await db(context, api_keys.get_api_key, actor=actor, key_id=key_id)
    await reply(
        update,
        texts.apikey_confirm(info.id, info.name, info.prefix, info.staff_name),
        reply_markup=keyboards.api_key_revoke_confirm(
            info.id, texts.APIKEY_BTN_REVOKE, texts.APIKEY_BTN_KEEP
        ),
    )


@require_staff
async def revoke_button(update: Update, context: Context, actor: Actor) -> None:
    """key:rv:<id>: revoke it (audited by the service), then say so in place."""
    ids = keyboards.parse_ids(query_of(update).data, CB.API_KEY_REVOKE)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    try:
        info = await db(context, api_keys.revoke_api_key, actor=actor, key_id=ids[0])
    except ServiceError as err:
        await answer_button(update, err.message)
        return
    log.info("API key %s revoked by staff %s", info.id, actor.staff_id)
    await query_of(update).answer()
    await query_of(update).edit_message_text(texts.apikey_revoked(info.id, info.name))


@require_staff
async def keep_button(update: Update, context: Context, actor: Actor) -> None:
    """key:keep:<id>: nothing changes."""
    ids = keyboards.parse_ids(query_of(update).data, CB.API_KEY_KEEP)
    if ids is None:
        await answer_button(update, texts.BAD_BUTTON)
        return
    await query_of(update).answer()
    await query_of(update).edit_message_text(texts.apikey_kept(ids[0]))
