"""The Twilio sandbox's state and behaviour, shared by its HTTP face and its side door.

Everything here is thread-safe through one lock: the HTTP handlers run on the server's
event loop, the side door is called from tests, benchmarks or the demo in other threads.
Methods marked "loop side" run only on the server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime

import aiohttp
from twilio.request_validator import RequestValidator

from db import clock
from scheduler.sandbox.model import (
    API_VERSION,
    DELIVERY_ERRORS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    CallbackTiming,
    CallFaults,
    Delivery,
    FailureProfile,
    Message,
    Rejection,
    Scripted,
    Step,
    count_segments,
    in_window,
    new_sid,
    plan_life,
)

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT_SID = "AC" + "5a" * 16
DEFAULT_AUTH_TOKEN = "0123456789abcdef" * 2
DEFAULT_PHONE_NUMBER = "+15005550006"  # Twilio's own "valid test number"
WEBHOOKS_IN_FLIGHT = 100  # webhook posts at a time (within the client's pool)


@dataclass(frozen=True)
class CallbackRecord:
    """One webhook the sandbox posted: status callback or inbound SMS, and what came back."""

    kind: str  # "status" or "inbound"
    url: str
    params: dict[str, str]
    signature: str
    status_code: int | None
    body: str
    content_type: str | None
    error: str | None


@dataclass(frozen=True)
class InboundReply:
    """The web app's answer to an inbound SMS webhook (TwiML or empty)."""

    message_sid: str
    status_code: int
    body: str
    content_type: str | None


class SandboxWorld:
    """Messages, rules set through the side door, counters, and each message's life."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        latency: float = 0.0,
        seed: int = 0,
        failure_profile: FailureProfile | None = None,
        *,
        callback_timing: CallbackTiming | None = None,
        inbound_url: str | None = None,
        phone_number: str = DEFAULT_PHONE_NUMBER,
        hang_seconds: float = 60.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.latency = latency  # seconds added to every API request (benchmarks)
        self.seed = seed
        self.failure_profile = failure_profile
        self.callback_timing = callback_timing or CallbackTiming()
        self.inbound_url = inbound_url
        self.phone_number = phone_number
        self.hang_seconds = hang_seconds  # how long a scripted "timeout" hangs at most
        # Random 429/500/timeouts on a share of calls (fault tests); scripts go first.
        self.call_faults: CallFaults | None = None
        self._validator = RequestValidator(auth_token)
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._clear_state()
        # Loop side, created in on_loop_start.
        self._http: aiohttp.ClientSession | None = None
        self.stopping: asyncio.Event | None = None
        self._lives: set[asyncio.Task[None]] = set()
        self._held: list[asyncio.Event] = []
        self._pending = 0
        self._post_gate = asyncio.Semaphore(WEBHOOKS_IN_FLIGHT)

    def _clear_state(self) -> None:
        with self._lock:
            self._messages: dict[str, Message] = {}
            self._seq = 0
            self._rejections: dict[str, Rejection] = {}
            self._deliveries: dict[str, Delivery] = {}
            self._unsubscribed: set[str] = set()
            self._scripts: list[Scripted] = []
            self._requests: Counter[str] = Counter()
            self._created: Counter[str] = Counter()
            self._callbacks: list[CallbackRecord] = []

    # --- side door: configure ----------------------------------------------------------

    def fail_number(
        self, phone: str, code: int = 21211, *, http_status: int = 400, message: str | None = None
    ) -> None:
        """Refuse every message to `phone` with this Twilio error (e.g. 21610, 21614)."""
        with self._lock:
            self._rejections[phone] = Rejection(code, http_status, message)

    def clear_number(self, phone: str) -> None:
        """Forget fail_number, set_delivery and opt-out for `phone`."""
        with self._lock:
            self._rejections.pop(phone, None)
            self._deliveries.pop(phone, None)
            self._unsubscribed.discard(phone)

    def set_delivery(
        self, phone: str, outcome: str = "delivered", error_code: int | None = None
    ) -> None:
        """What happens after acceptance: delivered, undelivered (30003/30005/30006),
        failed, sent (no delivery receipt ever) or queued (stuck)."""
        with self._lock:
            self._deliveries[phone] = Delivery(outcome, error_code)

    def script(
        self,
        outcome: int | str | None = None,
        *,
        http_status: int | None = None,
        code: int | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        created: bool = False,
        on: str = "create",
        times: int = 1,
    ) -> None:
        """Queue the answer to the next matching API call(s), first in first out.

        outcome: an HTTP status (429, 500, 503, ...), "timeout" (hang past the client's
        timeout) or "disconnect" (close the connection without a response).
        created=True: the message is created anyway, as when Twilio fails after accepting.
        on: "create" (default), "fetch", "list" or "any".
        """
        if isinstance(outcome, int):
            http_status, outcome = outcome, None
        kind = outcome or "error"
        if kind not in ("error", "timeout", "disconnect"):
            raise ValueError(f"unknown scripted outcome {outcome!r}")
        if kind == "error" and http_status is None:
            raise ValueError("a scripted error needs an HTTP status")
        if on not in ("create", "fetch", "list", "any"):
            raise ValueError(f"unknown operation {on!r}")
        entry = Scripted(kind, http_status, code, message, retry_after, created, on)
        with self._lock:
            self._scripts.extend([entry] * times)

    # --- side door: read ---------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """Every outbound message created through the API, oldest first (copies)."""
        with self._lock:
            return [replace(m) for m in self._messages.values() if m.direction != "inbound"]

    def messages_to(self, phone: str) -> list[Message]:
        return [m for m in self.messages if m.to == phone]

    def message(self, sid: str) -> Message | None:
        with self._lock:
            found = self._messages.get(sid)
            return replace(found) if found else None

    @property
    def inbound_messages(self) -> list[Message]:
        with self._lock:
            return [replace(m) for m in self._messages.values() if m.direction == "inbound"]

    @property
    def callbacks(self) -> list[CallbackRecord]:
        """Every webhook posted (status and inbound), in posting order."""
        with self._lock:
            return list(self._callbacks)

    def request_count(self, operation: str | None = None) -> int:
        """API requests received: all, or one of "create", "fetch", "list", "other"."""
        with self._lock:
            return self._requests[operation] if operation else sum(self._requests.values())

    def created_count(self, phone: str) -> int:
        """Messages created to `phone` (to assert "sent exactly once")."""
        with self._lock:
            return self._created[phone]

    # --- for the HTTP face -------------------------------------------------------------

    def count(self, operation: str) -> None:
        with self._lock:
            self._requests[operation] += 1

    def next_script(self, operation: str) -> Scripted | None:
        with self._lock:
            for i, entry in enumerate(self._scripts):
                if entry.matches(operation):
                    return self._scripts.pop(i)
            if self.call_faults is not None:
                return self.call_faults.draw(operation, self._rng)
        return None

    def refusal(self, to: str) -> Rejection | None:
        """Why the API refuses a message to `to`, if it does."""
        with self._lock:
            if to in self._rejections:
                return self._rejections[to]
            if to in self._unsubscribed:
                return Rejection(21610)
        fate = self.failure_profile.fate(self.seed, to) if self.failure_profile else None
        return fate if isinstance(fate, Rejection) else None

    def create(self, form: dict[str, str], to: str) -> Message:
        """Store an accepted message and start its life (loop side)."""
        service = form.get("MessagingServiceSid") or None
        sender = form.get("From") or None
        now = clock.utcnow()
        with self._lock:
            self._seq += 1
            message = Message(
                sid=new_sid("SM"),
                account_sid=self.account_sid,
                to=to,
                from_=sender or self.phone_number,
                body=form["Body"],
                # A Messaging Service without From picks the sender later: "accepted".
                status="accepted" if service and not sender else "queued",
                messaging_service_sid=service,
                status_callback=form.get("StatusCallback") or None,
                num_segments=count_segments(form["Body"]),
                date_created=now,
                date_updated=now,
                seq=self._seq,
            )
            self._messages[message.sid] = message
            self._created[to] += 1
        self._start_life(message)
        log.debug("sandbox: created %s to %s", message.sid, to)
        return replace(message)

    def resource(self, sid: str) -> dict[str, object] | None:
        with self._lock:
            message = self._messages.get(sid)
            return message.resource() if message else None

    def matching(
        self, *, to: str | None, sender: str | None, after: datetime | None, before: datetime | None
    ) -> list[Message]:
        with self._lock:
            return [
                replace(m)
                for m in self._messages.values()
                if (to is None or m.to == to)
                and (sender is None or m.from_ == sender)
                and in_window(m, after, before)
            ]

    # --- loop side: start, stop, idle ---------------------------------------------------

    async def on_loop_start(self) -> None:
        # aiohttp, not httpx: a fault run posts 20,000 webhooks and httpx costs several
        # times the CPU per request. trust_env=False: never through an env proxy.
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10.0),
            trust_env=False,
            connector=aiohttp.TCPConnector(limit=WEBHOOKS_IN_FLIGHT),
        )
        # httpcore's pool scans every waiting request on each change (quadratic): with
        # thousands of callbacks due at once it would starve this loop. Queue them here.
        self._post_gate = asyncio.Semaphore(WEBHOOKS_IN_FLIGHT)
        self.stopping = asyncio.Event()

    async def on_loop_stop(self) -> None:
        await self.cancel_lives()
        if self._http is not None:
            await self._http.close()

    async def quiesce(self) -> None:
        """Before stopping: release hung requests, drop pending callbacks."""
        if self.stopping is not None:
            self.stopping.set()
        await self.cancel_lives()

    async def cancel_lives(self) -> None:
        lives = list(self._lives)
        for task in lives:
            task.cancel()
        await asyncio.gather(*lives, return_exceptions=True)
        self._held.clear()
        self._pending = 0

    async def release_held(self) -> None:
        held, self._held = self._held, []
        self._pending += len(held)
        for gate in held:
            gate.set()

    async def until_idle(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pending > 0:
            if loop.time() > deadline:
                raise TimeoutError(f"{self._pending} message(s) still in flight")
            await asyncio.sleep(0.005)

    # --- loop side: a message's life ----------------------------------------------------

    def _start_life(self, message: Message) -> None:
        delivery = self._delivery_for(message.to)
        timing = self.callback_timing
        with self._lock:
            steps = plan_life(
                delivery, via_service=message.status == "accepted", timing=timing, rng=self._rng
            )
        gate: asyncio.Event | None = None
        if timing.hold:
            gate = asyncio.Event()
            self._held.append(gate)
        else:
            self._pending += 1
        task = asyncio.get_running_loop().create_task(self._live(message.sid, steps, gate))
        self._lives.add(task)
        task.add_done_callback(self._lives.discard)

    def _delivery_for(self, to: str) -> Delivery:
        with self._lock:
            if to in self._deliveries:
                return self._deliveries[to]
        fate = self.failure_profile.fate(self.seed, to) if self.failure_profile else None
        return fate if isinstance(fate, Delivery) else Delivery()

    async def _live(self, sid: str, steps: list[Step], gate: asyncio.Event | None) -> None:
        counted = gate is None
        try:
            if gate is not None:
                await gate.wait()
                counted = True  # release_held counted it
            loop = asyncio.get_running_loop()
            start = loop.time()
            await asyncio.sleep(0)  # let the 201 go out before anything else happens
            for step in steps:
                delay = start + step.at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if step.post:
                    await self._post_status(sid, step)
                else:
                    self._set_status(sid, step)
        finally:
            if counted:
                self._pending = max(0, self._pending - 1)

    def _set_status(self, sid: str, step: Step) -> None:
        now = clock.utcnow()
        with self._lock:
            message = self._messages.get(sid)
            if message is None:
                return
            message.status = step.status
            message.date_updated = now
            if step.status == "sent":
                message.date_sent = now
            if step.error_code is not None:
                message.error_code = step.error_code
                message.error_message = DELIVERY_ERRORS.get(step.error_code)

    async def _post_status(self, sid: str, step: Step) -> None:
        with self._lock:
            message = self._messages.get(sid)
            if message is None or not message.status_callback:
                return
            url, params = message.status_callback, _status_params(message, step)
        await self._post_signed("status", url, params)

    # --- loop side: inbound SMS ----------------------------------------------------------

    async def inbound(self, from_phone: str, body: str, to: str | None) -> InboundReply:
        if not self.inbound_url:
            raise RuntimeError("set TwilioSandbox.inbound_url before send_inbound()")
        message = self._store_inbound(from_phone, body, to or self.phone_number)
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "SmsMessageSid": message.sid,
            "AccountSid": self.account_sid,
            "From": from_phone,
            "To": message.to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": str(message.num_segments),
            "SmsStatus": "received",
            "ApiVersion": API_VERSION,
        }
        keyword = body.strip().upper()
        if keyword in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS:
            params["OptOutType"] = "STOP" if keyword in OPT_OUT_KEYWORDS else "START"
        record = await self._post_signed("inbound", self.inbound_url, params)
        if record.status_code is None:
            raise ConnectionError(f"inbound webhook {self.inbound_url} failed: {record.error}")
        return InboundReply(message.sid, record.status_code, record.body, record.content_type)

    def _store_inbound(self, from_phone: str, body: str, to: str) -> Message:
        # Twilio's default opt-out handling: STOP unsubscribes the sender from this account.
        keyword = body.strip().upper()
        now = clock.utcnow()
        with self._lock:
            if keyword in OPT_OUT_KEYWORDS:
                self._unsubscribed.add(from_phone)
            elif keyword in OPT_IN_KEYWORDS:
                self._unsubscribed.discard(from_phone)
            self._seq += 1
            message = Message(
                sid=new_sid("SM"),
                account_sid=self.account_sid,
                to=to,
                from_=from_phone,
                body=body,
                status="received",
                direction="inbound",
                num_segments=count_segments(body) if body else 1,
                date_created=now,
                date_updated=now,
                date_sent=now,
                seq=self._seq,
            )
            self._messages[message.sid] = message
        return message

    async def _post_signed(self, kind: str, url: str, params: dict[str, str]) -> CallbackRecord:
        """POST form params to url, signed like Twilio (X-Twilio-Signature, HMAC-SHA1)."""
        assert self._http is not None
        signature = self._validator.compute_signature(url, params)
        headers = {
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        }
        status_code: int | None = None
        text, content_type, error = "", None, None
        try:
            async with (
                self._post_gate,
                self._http.post(url, data=params, headers=headers) as response,
            ):
                status_code, text = response.status, await response.text()
                content_type = response.headers.get("Content-Type")
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("sandbox: %s webhook to %s failed: %s", kind, url, error)
        record = CallbackRecord(
            kind, url, params, signature, status_code, text, content_type, error
        )
        with self._lock:
            self._callbacks.append(record)
        return record


def _status_params(message: Message, step: Step) -> dict[str, str]:
    params = {
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "AccountSid": message.account_sid,
        "From": message.from_ or "",
        "To": message.to,
        "MessageStatus": step.status,
        "SmsStatus": step.status,
        "ApiVersion": API_VERSION,
    }
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if step.error_code is not None:
        params["ErrorCode"] = str(step.error_code)
    return params
