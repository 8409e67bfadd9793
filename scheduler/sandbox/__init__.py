"""A local Twilio REST API for the tests, the benchmarks and `vasooli demo`.

It speaks the part of Twilio's API that Vasooli uses, over real HTTP, errors included:
create / fetch / list Messages, HTTP Basic auth, Twilio's validation codes, errors on
demand per number or per call (429, 5xx, timeouts, dropped connections), delivery
outcomes per number, signed status callbacks and signed inbound SMS webhooks.

    with TwilioSandbox() as sb:
        sender = TwilioSender(sb.account_sid, sb.auth_token, from_number=sb.phone_number,
                              api_base_url=sb.base_url)
        sb.fail_number("+919999900001", code=21610)
        sb.script(http_status=429, code=20429, retry_after=2)

The pieces: model (rules without I/O), world (state, side door, each message's life),
http (the endpoints), server (uvicorn in a thread); demo_world is the demo's worker side.
"""

from __future__ import annotations

import asyncio

from scheduler.sandbox.http import build_app
from scheduler.sandbox.model import (
    API_VERSION,
    CallbackTiming,
    CallFaults,
    FailureProfile,
    Message,
)
from scheduler.sandbox.server import ServerThread, connection_tracking_protocol
from scheduler.sandbox.world import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_PHONE_NUMBER,
    CallbackRecord,
    InboundReply,
    SandboxWorld,
)

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_PHONE_NUMBER",
    "CallFaults",
    "CallbackRecord",
    "CallbackTiming",
    "FailureProfile",
    "InboundReply",
    "Message",
    "TwilioSandbox",
]


class TwilioSandbox(SandboxWorld):
    """A Twilio Messages API on http://127.0.0.1:<free port>, in a background thread.

    The side door (fail_number, set_delivery, script, messages, created_count, ...) is
    thread-safe. Methods ending in `_async` are for code on another event loop that also
    serves the webhooks, where the blocking variant would deadlock.
    """

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
        super().__init__(
            account_sid,
            auth_token,
            latency,
            seed,
            failure_profile,
            callback_timing=callback_timing,
            inbound_url=inbound_url,
            phone_number=phone_number,
            hang_seconds=hang_seconds,
        )
        transports: dict[tuple[str, int], asyncio.Transport] = {}
        self._server = ServerThread(
            build_app(self, transports),
            name="twilio-sandbox",
            protocol=connection_tracking_protocol(transports),
            on_start=self.on_loop_start,
            on_stop=self.on_loop_stop,
        )

    def start(self) -> TwilioSandbox:
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop promptly: hung requests are released, pending callbacks are dropped."""
        if self._server.running:
            self._server.call(self.quiesce(), timeout=5)
        self._server.stop()

    def __enter__(self) -> TwilioSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT: what TWILIO_API_BASE_URL points at."""
        return self._server.base_url

    @property
    def api_url(self) -> str:
        """This account's Messages list URL."""
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    def reset(self) -> None:
        """Forget messages, rules, scripts, counters and callbacks (keeps the settings)."""
        if self._server.running:
            self._server.call(self.cancel_lives(), timeout=5)
        self._clear_state()

    # --- callbacks and inbound SMS -----------------------------------------------------

    def flush_callbacks(self) -> None:
        """Let the messages held by CallbackTiming(hold=True) move on."""
        self._server.call(self.release_held(), timeout=5)

    def wait_callbacks(self, timeout: float = 10.0) -> None:
        """Block until every released message has reached its final status and posted
        its callbacks. Use wait_callbacks_async if this loop also serves the webhooks."""
        self._server.call(self.until_idle(timeout), timeout=timeout + 1)

    async def wait_callbacks_async(self, timeout: float = 10.0) -> None:
        await self._server.call_async(self.until_idle(timeout))

    def send_inbound(
        self, from_phone: str, body: str, to: str | None = None, timeout: float = 10.0
    ) -> InboundReply:
        """Post a signed inbound SMS webhook to `inbound_url`; return the web app's answer.

        `to` defaults to the sandbox's phone_number. STOP/START work as at Twilio: the
        sender is (un)subscribed, and later messages to it fail with 21610."""
        return self._server.call(self.inbound(from_phone, body, to), timeout=timeout)

    async def send_inbound_async(
        self, from_phone: str, body: str, to: str | None = None
    ) -> InboundReply:
        return await self._server.call_async(self.inbound(from_phone, body, to))
