"""Serve an ASGI app with uvicorn on 127.0.0.1 in a background thread (for the sandboxes).

Also usable by tests that need a small web app Twilio can call back (status callbacks,
inbound SMS): `with ServerThread(app) as server: server.base_url`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

T = TypeVar("T")
Hook = Callable[[], Awaitable[None]]


def connection_tracking_protocol(registry: dict[tuple[str, int], asyncio.Transport]) -> type:
    """An HTTP protocol that records each open connection's transport by client address.

    The sandbox looks a request's connection up by scope["client"] to close it without a
    response, the way a failing network or load balancer does; ASGI itself cannot.
    """

    class _TrackingProtocol(H11Protocol):
        # H11Protocol itself narrows asyncio's BaseTransport to Transport (and ignores it too).
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if self.client:
                registry[self.client] = transport

        def connection_lost(self, exc: Exception | None) -> None:
            if self.client:
                registry.pop(self.client, None)
            super().connection_lost(exc)

    return _TrackingProtocol


class ServerThread:
    """uvicorn serving `app` on a free port of 127.0.0.1, in its own thread and event loop."""

    def __init__(
        self,
        app: Any,
        *,
        name: str = "asgi-server",
        protocol: type | None = None,
        on_start: Hook | None = None,
        on_stop: Hook | None = None,
    ) -> None:
        self._app = app
        self._name = name
        self._protocol = protocol
        self._on_start = on_start
        self._on_stop = on_stop
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError(f"{self._name} is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> ServerThread:
        if self.running:
            return self
        # Binding here (port 0) gives the port before the thread starts: no race, no retry.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            http=self._protocol or "h11",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=self._name, daemon=True
        )
        self._thread.start()
        self._wait_started(timeout)
        log.debug("%s listening on %s", self._name, self.base_url)
        return self

    def _wait_started(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not (self._server and self._server.started):
            if not self.running or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._name} did not start")
            time.sleep(0.005)

    def _run(self, sock: socket.socket) -> None:
        asyncio.run(self._main(sock))

    async def _main(self, sock: socket.socket) -> None:
        self.loop = asyncio.get_running_loop()
        if self._on_start:
            await self._on_start()
        try:
            assert self._server is not None
            await self._server.serve(sockets=[sock])
        finally:
            if self._on_stop:
                await self._on_stop()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and join the thread (in-flight requests get up to ~2 s)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s thread did not stop within %.1f s", self._name, 2 * timeout)
        self._thread = None
        self.loop = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the server's loop and wait for it (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self._require_loop(coro)).result(timeout)

    async def call_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop, awaiting it from another event loop."""
        future = asyncio.run_coroutine_threadsafe(coro, self._require_loop(coro))
        return await asyncio.wrap_future(future)

    def _require_loop(self, coro: Coroutine[Any, Any, Any]) -> asyncio.AbstractEventLoop:
        if self.loop is None or not self.running:
            coro.close()  # never scheduled: close it so Python does not warn "never awaited"
            raise RuntimeError(f"{self._name} is not running")
        return self.loop

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
