"""The worker and the web app as parts of a bigger asyncio program (`vasooli run`, the demo).

Each is an async context manager: entered, it runs on the caller's loop; left, it stops
cleanly (running sends finish, the HTTP server closes its connections). Signals belong to
the caller, who decides when everything stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp

from db.config import Settings, SettingsError
from scheduler.sms import SmsSender, make_sender
from scheduler.web import make_server
from scheduler.worker import WorkerScheduler, build_scheduler

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0


@contextlib.asynccontextmanager
async def running_worker(
    settings: Settings, session_factory: sessionmaker[Session], sender: SmsSender | None = None
) -> AsyncIterator[WorkerScheduler]:
    """The APScheduler worker on the running loop; drained and its sender closed on exit."""
    sender = sender or make_sender(settings)
    scheduler = build_scheduler(settings, session_factory, sender)
    scheduler.start()
    log.info("worker %s started", scheduler.worker_jobs.worker)
    try:
        yield scheduler
    finally:
        await scheduler.drain()
        await sender.aclose()
        log.info("worker stopped")


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one); SettingsError when it cannot be had."""
    try:
        return socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise SettingsError(
            f"setting PORT is unusable: cannot listen on {host}:{port} ({exc.strerror or exc})"
        ) from None


@contextlib.contextmanager
def _leave_signals() -> Iterator[None]:
    yield


@contextlib.asynccontextmanager
async def running_web(
    app: ASGIApp,
    settings: Settings,
    *,
    sock: socket.socket | None = None,
    host: str = "0.0.0.0",
    stopped: asyncio.Event | None = None,
) -> AsyncIterator[uvicorn.Server]:
    """Serve app with uvicorn on the running loop (on sock, else host:PORT) until exit.

    `stopped` is set if the server ends by itself, so the caller can stop the rest.
    """
    sock = sock or listen_socket(host, settings.port)
    server = make_server(app, settings, host)
    # uvicorn would take SIGINT/SIGTERM from the caller and raise them again on exit; it has
    # no setting for that, so its method is replaced.
    server.capture_signals = _leave_signals  # type: ignore[method-assign]
    task = asyncio.create_task(_serve(server, sock), name="web")
    if stopped is not None:
        task.add_done_callback(lambda _: stopped.set())
    try:
        await _started(server, task)
        log.info("web app listening on %s:%s", *sock.getsockname()[:2])
        yield server
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    try:
        await server.serve(sockets=[sock])
    except SystemExit:  # uvicorn exits on a failed startup; a task must not raise that
        raise RuntimeError("the web server failed to start (see the log)") from None


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("the web server stopped while starting")
        if loop.time() > deadline:
            raise RuntimeError(f"the web server did not start within {START_TIMEOUT:.0f} s")
        await asyncio.sleep(0.01)
