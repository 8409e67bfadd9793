"""The sandbox's HTTP face: the Bot API, file downloads, webhook delivery, the side door.

Everything here runs on the server's own event loop. Long polls and the webhook deliverer
sleep on an asyncio.Event that is swapped for a fresh one on every wake-up, so one set()
wakes every waiter and no wake-up is lost between a check and a wait; other threads wake
them through loop.call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import mimetypes
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sandbox import door, media, settings
from bot.sandbox import methods as msg
from bot.sandbox.params import Params, parse_body
from bot.sandbox.world import ApiError, World

log = logging.getLogger(__name__)

Method = Callable[[World, Params], object]
_METHODS: dict[str, Method] = {
    "getMe": msg.get_me,
    "sendMessage": msg.send_message,
    "editMessageText": msg.edit_message_text,
    "editMessageCaption": msg.edit_message_caption,
    "editMessageReplyMarkup": msg.edit_message_reply_markup,
    "deleteMessage": msg.delete_message,
    "answerCallbackQuery": msg.answer_callback_query,
    "sendChatAction": msg.send_chat_action,
    "getChat": msg.get_chat,
    "sendPhoto": media.send_photo,
    "sendDocument": media.send_document,
    "getFile": media.get_file,
    "setMyCommands": settings.set_my_commands,
    "getMyCommands": settings.get_my_commands,
    "deleteMyCommands": settings.delete_my_commands,
    "setWebhook": settings.set_webhook,
    "deleteWebhook": settings.delete_webhook,
    "getWebhookInfo": settings.get_webhook_info,
    "setChatMenuButton": settings.set_chat_menu_button,
    "getChatMenuButton": settings.get_chat_menu_button,
    **dict.fromkeys(
        (
            "close",
            "logOut",
            "setMyDescription",
            "setMyShortDescription",
            "setMyName",
            "setMyDefaultAdministratorRights",
        ),
        msg.succeed,
    ),
}
# Telegram method names are case-insensitive; calls are recorded under their proper name.
# getUpdates waits on the event loop, so BotApiServer serves it itself (the entry only
# makes the name known).
METHODS: dict[str, tuple[str, Method]] = {
    name.lower(): (name, fn) for name, fn in (_METHODS | {"getUpdates": msg.succeed}).items()
}
CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
CONFLICT_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one "
    "bot instance is running"
)


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.payload(), status_code=exc.code)


def _door_int(p: Params, name: str) -> int:
    value = p.integer(name)
    if value is None:
        raise ValueError(f"{name} is required")
    return value


_DOOR: dict[str, Callable[[World, Params], object]] = {
    "user": lambda w, p: door.add_user(
        w,
        _door_int(p, "user_id"),
        p.text("first_name") or "",
        p.text("username"),
        p.flag("started"),
    ),
    "group": lambda w, p: door.add_group(w, _door_int(p, "chat_id"), p.text("title") or ""),
    "send": lambda w, p: door.send_text(
        w,
        _door_int(p, "user_id"),
        p.text("text") or "",
        p.integer("chat_id"),
        p.integer("reply_to"),
    ),
    "press": lambda w, p: door.press(
        w,
        _door_int(p, "user_id"),
        _door_int(p, "message_id"),
        p.text("callback_data") or "",
        p.integer("chat_id"),
        p.flag("force"),
    ),
    "tap": lambda w, p: door.tap(
        w, _door_int(p, "user_id"), p.text("label") or "", p.integer("chat_id")
    ),
    "sent": lambda w, p: _sent(w, _door_int(p, "chat_id")),
}


def _sent(world: World, chat_id: int) -> list[dict]:
    with world.lock:
        return [stored.snapshot() for stored in world.bot_messages(chat_id)]


class BotApiServer:
    """The Starlette app and the loop-side state behind it."""

    def __init__(self, world: World, token: str) -> None:
        self.world = world
        self.token = token
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._poll_generation = 0
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._bot_api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._file, methods=["GET"]),
                Route("/sandbox/{action}", self._side_door, methods=["GET", "POST"]),
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.loop = asyncio.get_running_loop()
        self.world.add_update_hook(self.wake_threadsafe)
        deliverer = asyncio.create_task(self._deliver_webhooks(), name="sandbox-webhook")
        try:
            yield
        finally:
            self.world.remove_update_hook(self.wake_threadsafe)
            deliverer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliverer

    def _wake_all(self) -> None:
        woken, self._wake = self._wake, asyncio.Event()
        woken.set()

    def wake_threadsafe(self) -> None:
        """Wake long polls and the deliverer; safe from any thread, never blocks."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake_all)

    def request_stop(self) -> None:
        """Let waiting long polls return now, so the server can shut down promptly."""
        self.stopping = True
        self.wake_threadsafe()

    # -- the Bot API ------------------------------------------------------------------------

    async def _bot_api(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error(ApiError(401, "Unauthorized"))
        entry = METHODS.get(request.path_params["method"].lower())
        if entry is None:
            return _error(ApiError(404, "Not Found"))
        try:
            params = parse_body(
                request.headers.get("content-type", ""),
                await request.body(),
                dict(request.query_params),
            )
            result = await self._call(entry[0], entry[1], params)
        except ApiError as exc:
            log.debug("bot api %s -> %s %s", entry[0], exc.code, exc.description)
            return _error(exc)
        except Exception:  # a sandbox bug must look like a server error, not a hang
            log.exception("sandbox failed in %s", entry[0])
            return _error(ApiError(500, "Internal Server Error"))
        return JSONResponse({"ok": True, "result": result})

    async def _call(self, name: str, method: Method, params: Params) -> object:
        log.debug("bot api %s %s", name, params.plain())
        with self.world.lock:
            self.world.calls.append((name, params.plain()))
            fault = self._take_fault(name.lower())
        if fault is not None:
            raise fault
        if name == "getUpdates":
            return await self._get_updates(params)
        return method(self.world, params)

    def _take_fault(self, name: str) -> ApiError | None:
        for fault in self.world.faults:
            if fault.method in (name, "*"):
                fault.times -= 1
                if fault.times <= 0:
                    self.world.faults.remove(fault)
                return fault.error
        return None

    async def _get_updates(self, p: Params) -> list[dict]:
        with self.world.lock:
            if self.world.webhook:
                raise ApiError(409, CONFLICT_WEBHOOK)
            allowed = p.obj("allowed_updates")
            if isinstance(allowed, list):  # a setting: it stays until changed
                self.world.allowed_updates = [str(kind) for kind in allowed]
        offset = p.integer("offset")
        limit = min(max(p.integer("limit") or 100, 1), 100)
        timeout = min(max(p.number("timeout") or 0.0, 0.0), 50.0)
        self._poll_generation += 1
        self._wake_all()  # a poll still waiting ends with 409, as on Telegram
        self.world.count_poll(+1)
        try:
            return await self._poll(self._poll_generation, offset, limit, timeout)
        finally:
            self.world.count_poll(-1)

    async def _poll(
        self, generation: int, offset: int | None, limit: int, timeout: float
    ) -> list[dict]:
        assert self.loop is not None
        deadline = self.loop.time() + timeout
        while True:
            wake = self._wake  # taken before the check, so a wake-up after it is not lost
            updates = self.world.take_updates(offset, limit)
            if updates or self.stopping:
                return updates
            if generation != self._poll_generation:
                raise ApiError(409, CONFLICT_POLL)
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), remaining)

    async def _file(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error(ApiError(401, "Unauthorized"))
        path = request.path_params["path"]
        with self.world.lock:
            record = next(
                (r for r in self.world.files.values() if r.get("file_path") == path), None
            )
        if record is None or not record.get("local_path"):
            return _error(ApiError(404, "Not Found"))
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return Response(Path(record["local_path"]).read_bytes(), media_type=kind)

    # -- webhook delivery -------------------------------------------------------------------

    async def _deliver_webhooks(self) -> None:
        """POST each pending update to the webhook in order; retry with back-off on failure."""
        async with httpx.AsyncClient(timeout=10.0) as client:
            failures = 0
            while not self.stopping:
                wake = self._wake
                hook, update = self._next_delivery()
                if update is None:
                    await wake.wait()
                elif await self._post_update(client, hook, update):
                    self.world.confirm(update["update_id"])
                    failures = 0
                else:
                    failures += 1
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), min(0.1 * 2**failures, 5.0))

    def _next_delivery(self) -> tuple[dict, dict | None]:
        with self.world.lock:
            hook = dict(self.world.webhook)
            if not hook or not self.world.updates:
                return hook, None
            return hook, copy.deepcopy(self.world.updates[0])

    async def _post_update(self, client: httpx.AsyncClient, hook: dict, update: dict) -> bool:
        secret = hook.get("secret_token")
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        try:
            response = await client.post(hook["url"], json=update, headers=headers)
        except httpx.HTTPError as exc:
            return self._webhook_failed(hook, f"Connection failed: {type(exc).__name__}")
        if response.is_success:
            return True
        reason = f"{response.status_code} {response.reason_phrase}"
        return self._webhook_failed(hook, f"Wrong response from the webhook: {reason}")

    def _webhook_failed(self, hook: dict, message: str) -> bool:
        log.info("webhook delivery to %s failed: %s", hook["url"], message)
        with self.world.lock:
            if self.world.webhook.get("url") == hook["url"]:
                self.world.webhook |= {
                    "last_error_date": int(time.time()),
                    "last_error_message": message,
                }
        return False

    # -- the side door over HTTP ------------------------------------------------------------

    async def _side_door(self, request: Request) -> Response:
        action = _DOOR.get(request.path_params["action"])
        if action is None:
            return JSONResponse({"ok": False, "description": "Not Found"}, status_code=404)
        try:
            params = parse_body(
                request.headers.get("content-type", ""),
                await request.body(),
                dict(request.query_params),
            )
            result = action(self.world, params)
        except (ValueError, ApiError) as exc:
            return JSONResponse({"ok": False, "description": str(exc)}, status_code=400)
        return JSONResponse({"ok": True, "result": result})
