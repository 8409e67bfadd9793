"""The sandbox Bot API, driven by the real python-telegram-bot over HTTP."""

from __future__ import annotations

import asyncio
import html
import json
import struct
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.sandbox import TelegramSandbox
from bot.sandbox.html import HtmlError, parse_html

pytestmark = pytest.mark.e2e
# PTB rewrites Telegram's descriptions (drops "Bad Request: ", capitalizes), so error
# matches below ignore case.

AGENT = 42
KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("Pay", callback_data="pay:7")]])


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[TelegramSandbox]:
    with TelegramSandbox(files_dir=str(tmp_path / "files")) as sb:
        sb.user(AGENT, "Asha", username="asha")
        yield sb


@pytest.fixture
async def bot(sandbox: TelegramSandbox) -> AsyncIterator[Bot]:
    async with Bot(
        sandbox.token, base_url=sandbox.base_url, base_file_url=sandbox.base_file_url
    ) as tg_bot:
        yield tg_bot


async def opened_chat(sandbox: TelegramSandbox, bot: Bot) -> None:
    """The agent writes /start and the bot confirms the update, like a polling bot would."""
    sandbox.send_text(AGENT, "/start")
    updates = await bot.get_updates(timeout=5)
    await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)


def tiny_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# -- the Bot API as PTB sees it ---------------------------------------------------------------


async def test_get_me_describes_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456789, "vasooli_bot", True)


async def test_html_with_escaped_user_text_is_parsed_like_telegram(sandbox, bot) -> None:
    await opened_chat(sandbox, bot)
    sent = await bot.send_message(AGENT, "<b>Name:</b> R&amp;D &lt;script&gt;", parse_mode="HTML")
    assert sent.text == "Name: R&D <script>"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 5)]
    assert sandbox.last(AGENT)["source"] == "<b>Name:</b> R&amp;D &lt;script&gt;"


async def test_unescaped_tag_is_refused_like_telegram(sandbox, bot) -> None:
    await opened_chat(sandbox, bot)
    with pytest.raises(BadRequest, match=r'(?i)unsupported start tag "script" at byte offset 6'):
        await bot.send_message(AGENT, "Name: <script>x</script>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't find end tag corresponding to start tag b"):
        await bot.send_message(AGENT, "<b>unclosed", parse_mode="HTML")
    assert sandbox.sent(AGENT) == []


async def test_sending_needs_an_open_chat_and_a_short_text(sandbox, bot) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(AGENT, "hello")  # the agent never wrote to the bot
    await opened_chat(sandbox, bot)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(AGENT, "x" * 4097)
    # Telegram counts UTF-16 units of the text after entity parsing: an emoji is 2, tags 0.
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(AGENT, "😀" * 2049)
    await bot.send_message(AGENT, "<b>" + "😀" * 2048 + "</b>", parse_mode="HTML")
    sandbox.block(AGENT)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(AGENT, "hello")


async def test_edits_follow_telegram_rules(sandbox, bot) -> None:
    await opened_chat(sandbox, bot)
    sent = await bot.send_message(AGENT, "Loan L-7", reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("Loan L-7", AGENT, sent.message_id, reply_markup=KEYBOARD)
    edited = await bot.edit_message_text("Loan L-7 paid", AGENT, sent.message_id)
    assert edited.text == "Loan L-7 paid" and edited.reply_markup is None  # keyboard dropped
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_text("x", AGENT, 999)
    assert await bot.delete_message(AGENT, sent.message_id)
    state = sandbox.sent(AGENT)[-1]
    assert (state["text"], state["edits"], state["deleted"]) == ("Loan L-7 paid", 1, True)


async def test_long_poll_returns_when_the_side_door_posts(sandbox, bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await asyncio.to_thread(sandbox.wait_until_polled)
    message = await asyncio.to_thread(sandbox.send_text, AGENT, "/start abc")
    updates = await asyncio.wait_for(poll, 10)  # far less than the 30 s poll: it woke early
    assert [u.message.text for u in updates] == ["/start abc"]
    assert updates[0].message.message_id == message["message_id"]
    command = updates[0].message.entities[0]
    assert (command.type, command.offset, command.length) == ("bot_command", 0, 6)
    assert updates[0].message.parse_entity(command) == "/start"


async def test_offset_confirms_updates(sandbox, bot) -> None:
    sandbox.send_text(AGENT, "one")
    sandbox.send_text(AGENT, "two")
    first = await bot.get_updates(limit=1)
    assert [u.message.text for u in first] == ["one"]
    rest = await bot.get_updates(offset=first[0].update_id + 1)
    assert [u.message.text for u in rest] == ["two"]
    assert [u["message"]["text"] for u in sandbox.pending_updates()] == ["two"]


async def test_press_makes_a_callback_query_ptb_parses(sandbox, bot) -> None:
    await opened_chat(sandbox, bot)
    sent = await bot.send_message(AGENT, "Record payment?", reply_markup=KEYBOARD)
    with pytest.raises(ValueError, match="no button with callback_data 'forged'"):
        sandbox.press(AGENT, sent.message_id, "forged")
    query_id = sandbox.press(AGENT, sent.message_id, "pay:7")
    (update,) = await bot.get_updates(timeout=5)
    query = update.callback_query
    assert (query.id, query.data, query.from_user.id) == (query_id, "pay:7", AGENT)
    assert query.message.message_id == sent.message_id and query.message.text == "Record payment?"
    assert await query.answer("Saved", show_alert=True)
    assert sandbox.callback_answers[query_id] == {
        "text": "Saved",
        "show_alert": True,
        "url": None,
        "cache_time": 0,
    }
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer("again")


async def test_forced_press_reaches_the_bot(sandbox, bot) -> None:
    await opened_chat(sandbox, bot)
    sent = await bot.send_message(AGENT, "Record payment?", reply_markup=KEYBOARD)
    sandbox.press(AGENT, sent.message_id, "loan:delete:1", force=True)
    (update,) = await bot.get_updates(timeout=5)
    assert update.callback_query.data == "loan:delete:1"


async def test_send_photo_saves_the_uploaded_bytes(sandbox, bot) -> None:
    await opened_chat(sandbox, bot)
    image = tiny_png(3, 2)
    sent = await bot.send_photo(AGENT, image, caption="<i>Portfolio</i>", parse_mode="HTML")
    size = sent.photo[-1]
    assert (size.width, size.height, sent.caption) == (3, 2, "Portfolio")
    record = sandbox.last(AGENT)
    assert record["kind"] == "photo" and Path(record["photo"]).read_bytes() == image
    file = await bot.get_file(size.file_id)
    assert bytes(await file.download_as_bytearray()) == image
    with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
        await bot.send_photo(AGENT, b"not an image")


async def test_send_document_keeps_name_and_bytes(sandbox, bot) -> None:
    await opened_chat(sandbox, bot)
    sent = await bot.send_document(AGENT, b"loan,amount\nL-7,1200\n", filename="dues.csv")
    assert (sent.document.file_name, sent.document.mime_type) == ("dues.csv", "text/csv")
    assert Path(sandbox.last(AGENT)["document"]).read_bytes() == b"loan,amount\nL-7,1200\n"


async def test_commands_are_kept_per_scope(sandbox, bot) -> None:
    await opened_chat(sandbox, bot)
    await bot.set_my_commands([BotCommand("start", "Begin")])
    await bot.set_my_commands([BotCommand("find", "Find a loan")], scope=BotCommandScopeChat(AGENT))
    assert sandbox.commands() == [{"command": "start", "description": "Begin"}]
    assert sandbox.commands(BotCommandScopeChat(AGENT).to_dict()) == [
        {"command": "find", "description": "Find a loan"}
    ]
    mine = await bot.get_my_commands(scope=BotCommandScopeChat(AGENT))
    assert [c.command for c in mine] == ["find"]
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Find", "upper case is refused")])


async def test_injected_429_is_retry_after_then_calls_succeed(sandbox, bot) -> None:
    sandbox.fail_next("getMe", error_code=429, retry_after=3)
    with pytest.raises(RetryAfter) as caught:
        await bot.get_me()
    assert "Retry in 3 seconds" in str(caught.value)  # PTB read parameters.retry_after
    assert (await bot.get_me()).username == "vasooli_bot"


async def test_wrong_token_is_invalid_token(sandbox) -> None:
    wrong = Bot("123456789:WRONG", base_url=sandbox.base_url)
    try:
        with pytest.raises(InvalidToken):
            await wrong.initialize()  # initialize() asks getMe, as an Application does
    finally:
        await wrong.shutdown()
    assert sandbox.calls("getMe") == []  # refused before any method ran


async def test_webhook_blocks_polling_and_receives_updates(sandbox, bot) -> None:
    with WebhookReceiver() as receiver:
        await bot.set_webhook(receiver.url, secret_token="s3cret")
        with pytest.raises(Conflict, match="can't use getUpdates method while webhook is active"):
            await bot.get_updates()
        sandbox.send_text(AGENT, "hello hook")
        headers, body = await asyncio.to_thread(receiver.next, 5)
    assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret"
    assert Update.de_json(body, bot).message.text == "hello hook"
    # The sandbox, like Telegram, drops the update once the receiver's 200 reaches it, which
    # may be just after receiver.next() returned: wait for that, never longer than 5 s.
    for _ in range(100):
        info = await bot.get_webhook_info()
        if info.pending_update_count == 0:
            break
        await asyncio.sleep(0.05)
    assert (info.url, info.pending_update_count) == (receiver.url, 0)
    await bot.delete_webhook()
    assert await bot.get_updates() == ()


async def test_stop_ends_a_waiting_long_poll(sandbox, bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await asyncio.to_thread(sandbox.wait_until_polled)
    await asyncio.to_thread(sandbox.stop)
    assert await asyncio.wait_for(poll, 10) == ()
    assert not [t for t in threading.enumerate() if t.name == "telegram-sandbox"]


async def test_a_polling_application_answers_through_the_sandbox(sandbox) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        name = html.escape(update.effective_user.first_name)
        await update.message.reply_html(f"Hello <b>{name}</b>", reply_markup=KEYBOARD)

    async def pay(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer("Recorded")
        await update.callback_query.edit_message_text("Paid")

    app = (
        Application.builder()
        .token(sandbox.token)
        .base_url(sandbox.base_url)
        .base_file_url(sandbox.base_file_url)
        .build()
    )
    app.add_handlers([CommandHandler("start", start), CallbackQueryHandler(pay)])
    sandbox.user(7, "<Ravi>")
    async with app:
        await app.updater.start_polling(poll_interval=0, timeout=10)
        await app.start()
        sandbox.send_text(7, "/start")
        greeting = await sandbox.wait_for_async(7)
        query_id = sandbox.tap(7, "Pay")
        answer = await sandbox.wait_answer_async(query_id)
        paid = await sandbox.wait_for_async(7, lambda m: m["text"] == "Paid")
        await app.updater.stop()
        await app.stop()
    assert (greeting["text"], greeting["source"]) == ("Hello <Ravi>", "Hello <b>&lt;Ravi&gt;</b>")
    assert answer["text"] == "Recorded"
    assert (paid["message_id"], paid["buttons"]) == (greeting["message_id"], [])


# -- the side door ------------------------------------------------------------------------------


async def test_wait_for_async_and_listeners_see_bot_actions(sandbox, bot) -> None:
    await opened_chat(sandbox, bot)
    events: list[dict] = []
    unsubscribe = sandbox.listen(events.append)
    sandbox.send_text(AGENT, "/find L-7")
    waiting = asyncio.create_task(sandbox.wait_for_async(AGENT, lambda m: "L-7" in m["text"]))
    sent = await bot.send_message(AGENT, "Loan L-7: due 1,200")
    await bot.edit_message_text("Loan L-7: paid", AGENT, sent.message_id)
    found = await asyncio.wait_for(waiting, 5)
    unsubscribe()
    assert found["message_id"] == sent.message_id
    assert [(e["action"], e["message"]["text"]) for e in events] == [
        ("send", "Loan L-7: due 1,200"),
        ("edit", "Loan L-7: paid"),
    ]


def test_wait_for_times_out_with_what_the_bot_said(sandbox) -> None:
    sandbox.send_text(AGENT, "/start")
    with pytest.raises(TimeoutError, match="sent nothing in this chat"):
        sandbox.wait_for(AGENT, timeout=0.2)


async def test_group_messages_carry_the_group_chat(sandbox, bot) -> None:
    sandbox.group(-1001, "Field team")
    sandbox.send_text(AGENT, "/start", chat_id=-1001)
    (update,) = await bot.get_updates(timeout=5)
    assert (update.message.chat.type, update.message.chat.id) == ("supergroup", -1001)
    assert update.message.from_user.id == AGENT


def test_side_door_and_bot_api_over_plain_http(sandbox) -> None:
    api = f"{sandbox.base_url}{sandbox.token}"
    with httpx.Client() as client:
        sent = client.post(f"{sandbox.url}/sandbox/send", json={"user_id": AGENT, "text": "hi"})
        assert sent.json()["result"]["text"] == "hi"
        markup = {"inline_keyboard": [[{"text": "Pay", "callback_data": "pay:7"}]]}
        reply = client.post(
            f"{api}/sendMessage", json={"chat_id": AGENT, "text": "ok", "reply_markup": markup}
        )
        assert reply.json()["result"]["reply_markup"] == markup
        listed = client.get(f"{sandbox.url}/sandbox/sent", params={"chat_id": AGENT}).json()
        assert [m["buttons"] for m in listed["result"]] == [[markup["inline_keyboard"][0][0]]]
        unknown = client.post(f"{api}/sendTelepathy")
        assert (unknown.status_code, unknown.json()) == (
            404,
            {"ok": False, "error_code": 404, "description": "Not Found"},
        )
        wrong = client.post(f"{sandbox.base_url}123:nope/getMe")
        assert (wrong.status_code, wrong.json()) == (
            401,
            {"ok": False, "error_code": 401, "description": "Unauthorized"},
        )
        sandbox.fail_next("sendMessage", retry_after=5)
        limited = client.post(f"{api}/sendMessage", data={"chat_id": AGENT, "text": "x"})
        assert limited.json() == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 5",
            "parameters": {"retry_after": 5},
        }


@pytest.mark.parametrize(
    ("html", "error"),
    [
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
    ],
)
def test_html_errors_match_telegram(html: str, error: str) -> None:
    with pytest.raises(HtmlError) as caught:
        parse_html(html)
    assert str(caught.value) == error


def test_html_offsets_are_utf16_and_pre_code_merges() -> None:
    text, entities = parse_html(
        '😀 <a href="https://x.in/?a=1&amp;b=2">pay</a> '
        '<pre><code class="language-py">x</code></pre>'
    )
    assert text == "😀 pay x"
    assert entities == [
        {"offset": 3, "length": 3, "type": "text_link", "url": "https://x.in/?a=1&b=2"},
        {"offset": 7, "length": 1, "type": "pre", "language": "py"},
    ]


class WebhookReceiver:
    """A plain HTTP server standing in for the bot's webhook endpoint."""

    def __init__(self) -> None:
        received: list[tuple[dict, dict]] = []
        arrived = threading.Condition()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with arrived:
                    received.append((dict(self.headers), body))
                    arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass  # keep test output quiet

        self._received, self._arrived = received, arrived
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/telegram"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def next(self, timeout: float) -> tuple[dict, dict]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._received, timeout):
                raise TimeoutError("the webhook received nothing")
            return self._received.pop(0)
