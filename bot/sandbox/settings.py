"""Bot API methods about the bot's settings: commands per scope, menu buttons, the webhook."""

from __future__ import annotations

import copy
import re

from bot.sandbox.params import Params
from bot.sandbox.world import World, bad_request

SCOPES = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def scope_key(scope: object, language_code: str = "") -> tuple:
    """How commands are filed: (scope type, chat id, user id, language)."""
    scope = scope or {"type": "default"}
    if not isinstance(scope, dict) or scope.get("type") not in SCOPES:
        raise bad_request("can't parse BotCommandScope JSON object")
    ids = []
    for name in ("chat_id", "user_id"):
        value = scope.get(name)
        try:
            ids.append(int(value) if value is not None else None)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None
    return (scope["type"], *ids, language_code or "")


def _known_scope(world: World, p: Params) -> tuple:
    key = scope_key(p.obj("scope"), p.text("language_code") or "")
    needs_chat = key[0] in ("chat", "chat_administrators", "chat_member")
    with world.lock:
        if needs_chat and key[1] not in world.chats:
            raise bad_request("chat not found")
    return key


def _checked_commands(value: object) -> list[dict]:
    if not isinstance(value, list) or len(value) > 100:
        raise bad_request("can't parse commands JSON object")
    commands = []
    for item in value:
        if not isinstance(item, dict) or not _COMMAND.fullmatch(str(item.get("command", ""))):
            raise bad_request("BOT_COMMAND_INVALID")
        description = str(item.get("description", "")).strip()
        if not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        commands.append({"command": item["command"], "description": description})
    return commands


def set_my_commands(world: World, p: Params) -> bool:
    commands = _checked_commands(p.obj("commands"))
    key = _known_scope(world, p)
    with world.lock:
        if commands:
            world.commands[key] = commands
        else:
            world.commands.pop(key, None)  # an empty list deletes, as in Telegram
    return True


def get_my_commands(world: World, p: Params) -> list[dict]:
    key = _known_scope(world, p)
    with world.lock:
        return copy.deepcopy(world.commands.get(key, []))


def delete_my_commands(world: World, p: Params) -> bool:
    key = _known_scope(world, p)
    with world.lock:
        world.commands.pop(key, None)
    return True


def set_webhook(world: World, p: Params) -> bool:
    url = (p.text("url") or "").strip()
    secret = p.text("secret_token")
    if secret is not None and not _SECRET.fullmatch(secret):
        raise bad_request("secret token contains unallowed characters")
    # Telegram insists on HTTPS on ports 443/80/88/8443; the sandbox takes any http(s) URL
    # so that tests can point it at a local server without a certificate.
    if url and not url.startswith(("http://", "https://")):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    allowed = p.obj("allowed_updates")
    with world.lock:
        if p.flag("drop_pending_updates"):
            world.updates.clear()
        if isinstance(allowed, list):
            world.allowed_updates = [str(kind) for kind in allowed]
        world.webhook = (
            {
                "url": url,
                "secret_token": secret,
                "max_connections": p.integer("max_connections") or 40,
            }
            if url
            else {}
        )
    world.poke()  # the deliverer starts (or stops) at once
    return True


def delete_webhook(world: World, p: Params) -> bool:
    with world.lock:
        if p.flag("drop_pending_updates"):
            world.updates.clear()
        world.webhook = {}
    world.poke()
    return True


def get_webhook_info(world: World, p: Params) -> dict:
    with world.lock:
        hook = world.webhook
        info = {
            "url": hook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(world.updates),
        }
        for key in ("max_connections", "last_error_date", "last_error_message"):
            if hook.get(key) is not None:
                info[key] = hook[key]
        if world.allowed_updates:
            info["allowed_updates"] = list(world.allowed_updates)
        return info


# --- the menu button (setChatMenuButton / getChatMenuButton) -------------------------------

_BUTTON_TYPES = frozenset({"commands", "web_app", "default"})


def _menu_chat(world: World, p: Params) -> int | None:
    """The private chat a menu button is for; None: the bot's default button."""
    if p.values.get("chat_id") in (None, ""):
        return None
    chat_id = p.integer("chat_id")
    with world.lock:
        chat = world.chats.get(chat_id) if chat_id is not None else None
    if chat is None or chat.get("type", "private") != "private":
        raise bad_request("invalid chat_id specified")
    return chat_id


def _checked_button(value: object) -> dict:
    if value is None:
        return {"type": "default"}
    if not isinstance(value, dict):
        raise bad_request("can't parse menu button: MenuButton must be an Object")
    kind = value.get("type")
    if kind not in _BUTTON_TYPES:
        raise bad_request("can't parse menu button: unsupported MenuButton type")
    if kind != "web_app":
        return {"type": kind}
    text = str(value.get("text") or "").strip()
    web_app = value.get("web_app")
    url = web_app.get("url") if isinstance(web_app, dict) else None
    if not text:
        raise bad_request("can't parse menu button: text is empty")
    # Telegram opens Web Apps over HTTPS only.
    if not isinstance(url, str) or not url.startswith("https://"):
        raise bad_request("BUTTON_URL_INVALID")
    return {"type": "web_app", "text": text, "web_app": {"url": url}}


def set_chat_menu_button(world: World, p: Params) -> bool:
    chat_id = _menu_chat(world, p)
    button = _checked_button(p.obj("menu_button"))
    with world.lock:
        if button["type"] == "default":
            world.menu_buttons.pop(chat_id, None)
        else:
            world.menu_buttons[chat_id] = button
    return True


def get_chat_menu_button(world: World, p: Params) -> dict:
    chat_id = _menu_chat(world, p)
    with world.lock:
        button = world.menu_buttons.get(chat_id) or world.menu_buttons.get(None)
        return copy.deepcopy(button or {"type": "commands"})
