"""Bot API methods about messages: send, edit, delete, answer a button, chat actions.

Each method takes the world and the request's Params and returns Telegram's `result`, or
raises ApiError with Telegram's own wording, so the bot meets the errors it would meet in
production. Parse mode HTML is validated like Telegram; Markdown is passed through
unparsed (Vasooli writes HTML only).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from bot.sandbox.html import HtmlError, parse_html, utf16_len
from bot.sandbox.params import Params
from bot.sandbox.world import Stored, World, bad_request, inline_buttons

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_MARKUP_KINDS = ("inline_keyboard", "keyboard", "remove_keyboard", "force_reply")
_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "callback_game",
    "pay",
    "web_app",
    "copy_text",
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_QUERY_INVALID = "query is too old and response timeout expired or query ID is invalid"


# -- shared by every method that sends something -----------------------------------------


def formatted(p: Params, field: str, entities_field: str) -> tuple[str, list[dict]]:
    """(text, entities) of a text or caption after the parse mode is applied."""
    raw = p.text(field) or ""
    mode = (p.text("parse_mode") or "").lower()
    if mode == "html":
        try:
            return parse_html(raw)
        except HtmlError as exc:
            raise bad_request(f"can't parse entities: {exc}") from None
    if mode not in ("", "markdown", "markdownv2"):
        raise bad_request("unsupported parse_mode")
    entities = p.obj(entities_field) or []
    if not isinstance(entities, list):
        raise bad_request("can't parse entities JSON object")
    return raw, entities


def caption_fields(p: Params) -> dict:
    caption, entities = formatted(p, "caption", "caption_entities")
    if len(caption) > CAPTION_LIMIT:
        raise bad_request("message caption is too long")
    fields: dict = {"caption": caption} if caption else {}
    return fields | ({"caption_entities": entities} if entities and caption else {})


def reply_markup(p: Params) -> dict | None:
    """The reply_markup as sent, checked like Telegram checks an inline keyboard."""
    markup = p.obj("reply_markup")
    if markup is None:
        return None
    if not isinstance(markup, dict) or not any(kind in markup for kind in _MARKUP_KINDS):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        _check_inline_keyboard(markup["inline_keyboard"])
    return markup


def _check_inline_keyboard(rows: object) -> None:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            'can\'t parse inline keyboard markup: field "inline_keyboard" must '
            "be an Array of Arrays"
        )
    for button in (button for row in rows for button in row):
        if not isinstance(button, dict) or not isinstance(button.get("text"), str):
            raise bad_request(
                'can\'t parse inline keyboard button: Field "text" must be of type String'
            )
        if not any(action in button for action in _BUTTON_ACTIONS):
            raise bad_request(
                "can't parse inline keyboard button: Text buttons are unallowed "
                "in the inline keyboard"
            )
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
            raise bad_request("BUTTON_DATA_INVALID")


def _echoed_markup(markup: dict | None) -> dict | None:
    """What a Message shows of reply_markup: only a non-empty inline keyboard."""
    if markup and inline_buttons(markup):
        return {"inline_keyboard": copy.deepcopy(markup["inline_keyboard"])}
    return None


def _reply_fields(world: World, p: Params, chat_id: int) -> dict:
    parameters = p.obj("reply_parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    target = parameters.get("message_id") or p.integer("reply_to_message_id")
    if not target:
        return {}
    stored = world.find(chat_id, int(target))
    if stored is None or stored.deleted:
        if parameters.get("allow_sending_without_reply") or p.flag("allow_sending_without_reply"):
            return {}
        raise bad_request("message to be replied not found")
    replied = copy.deepcopy(stored.message)
    replied.pop("reply_to_message", None)  # Telegram nests one level only
    return {"reply_to_message": replied}


def deliver(world: World, p: Params, chat_id: int, fields: dict, **extra) -> dict:
    """Store a bot message built from fields plus markup and reply; return the Message."""
    markup = reply_markup(p)
    fields = fields | _reply_fields(world, p, chat_id)
    if echoed := _echoed_markup(markup):
        fields["reply_markup"] = echoed
    stored = world.new_message(chat_id, world.bot_user, fields, markup=markup, **extra)
    with world.lock:
        return copy.deepcopy(stored.message)


# -- the methods ------------------------------------------------------------------------------


def get_me(world: World, p: Params) -> dict:
    return world.bot_user | {
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def send_message(world: World, p: Params) -> dict:
    chat_id = p.chat_id()
    world.writable_chat(chat_id)
    text, entities = _checked_text(p)
    fields = {"text": text} | ({"entities": entities} if entities else {})
    return deliver(world, p, chat_id, fields, source=p.text("text"))


def _checked_text(p: Params) -> tuple[str, list[dict]]:
    text, entities = formatted(p, "text", "entities")
    if not text.strip():
        raise bad_request("message text is empty")
    if utf16_len(text) > TEXT_LIMIT:  # Telegram counts UTF-16 units after entity parsing
        raise bad_request("message is too long")
    return text, entities


def _edit_target(world: World, p: Params) -> tuple[int, int]:
    if p.text("inline_message_id"):
        raise bad_request("MESSAGE_ID_INVALID")  # the sandbox has no inline messages
    chat_id = p.chat_id()
    world.writable_chat(chat_id)
    message_id = p.integer("message_id")
    if not message_id:
        raise bad_request("message identifier is not specified")
    return chat_id, message_id


def _inline_only(p: Params) -> dict | None:
    markup = reply_markup(p)
    if markup is not None and "inline_keyboard" not in markup:
        raise bad_request("inline keyboard expected")
    return _echoed_markup(markup)


def _apply_edit(stored: Stored, changes: dict) -> str:
    """Apply changes to an editable bot message, or raise what Telegram raises."""
    if not stored.from_bot:
        raise bad_request("message can't be edited")
    current = {key: stored.message.get(key) or None for key in changes}
    if current == {key: value or None for key, value in changes.items()}:
        raise bad_request(NOT_MODIFIED)
    for key, value in changes.items():
        if value:
            stored.message[key] = value
        else:
            stored.message.pop(key, None)
    stored.message["edit_date"] = int(time.time())
    stored.edits += 1
    return "edit"


def edit_message_text(world: World, p: Params) -> dict:
    chat_id, message_id = _edit_target(world, p)
    text, entities = _checked_text(p)
    # Without reply_markup Telegram removes the keyboard, so None is a change too.
    markup = _inline_only(p)
    changes = {"text": text, "entities": entities, "reply_markup": markup}

    def edit(stored: Stored) -> str:
        if "text" not in stored.message:
            raise bad_request("there is no text in the message to edit")
        action = _apply_edit(stored, changes)
        stored.source, stored.markup = p.text("text"), markup
        return action

    return world.change(chat_id, message_id, edit, missing="message to edit not found")


def edit_message_caption(world: World, p: Params) -> dict:
    chat_id, message_id = _edit_target(world, p)
    caption = caption_fields(p)
    changes = {
        "caption": caption.get("caption"),
        "caption_entities": caption.get("caption_entities"),
        "reply_markup": _inline_only(p),
    }

    def edit(stored: Stored) -> str:
        if "text" in stored.message:
            raise bad_request("there is no caption in the message to edit")
        action = _apply_edit(stored, changes)
        stored.source, stored.markup = p.text("caption"), changes["reply_markup"]
        return action

    return world.change(chat_id, message_id, edit, missing="message to edit not found")


def edit_message_reply_markup(world: World, p: Params) -> dict:
    chat_id, message_id = _edit_target(world, p)
    markup = _inline_only(p)

    def edit(stored: Stored) -> str:
        action = _apply_edit(stored, {"reply_markup": markup})
        stored.markup = markup
        return action

    return world.change(chat_id, message_id, edit, missing="message to edit not found")


def delete_message(world: World, p: Params) -> bool:
    chat_id = p.chat_id()
    with world.lock:
        if chat_id not in world.chats:
            raise bad_request("chat not found")
    message_id = p.integer("message_id")
    if not message_id:
        raise bad_request("message identifier is not specified")

    def delete(stored: Stored) -> str:
        stored.deleted = True
        return "delete"

    world.change(chat_id, message_id, delete, missing="message to delete not found")
    return True


def answer_callback_query(world: World, p: Params) -> bool:
    query_id = p.text("callback_query_id") or ""
    text = p.text("text")
    if text and len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    answer: dict[str, Any] = {
        "text": text,
        "show_alert": p.flag("show_alert"),
        "url": p.text("url"),
        "cache_time": p.integer("cache_time") or 0,
    }
    with world.lock:
        query = world.queries.get(query_id)
        if query is None or query.get("answer") is not None:
            raise bad_request(_QUERY_INVALID)  # Telegram takes one answer per query
        query["answer"] = answer
        world.note("answer", chat_id=query["chat_id"], callback_query_id=query_id, **answer)
    world.flush()
    return True


def send_chat_action(world: World, p: Params) -> bool:
    chat_id = p.chat_id()
    world.writable_chat(chat_id)
    action = p.text("action") or ""
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    with world.lock:
        world.note("chat_action", chat_id=chat_id, chat_action=action)
    world.flush()
    return True


def get_chat(world: World, p: Params) -> dict:
    chat_id = p.chat_id()
    with world.lock:
        chat = world.chats.get(chat_id)
        if chat is None or (chat["type"] == "private" and chat_id not in world.started):
            raise bad_request("chat not found")
        gifts = dict.fromkeys(
            ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription"), False
        )
        return copy.deepcopy(chat) | {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": gifts,
        }


def succeed(world: World, p: Params) -> bool:
    """Methods whose effect nothing in the sandbox observes (close, logOut, setMyName...)."""
    return True
