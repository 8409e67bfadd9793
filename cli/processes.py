"""The long-running processes: `bot`, `worker`, `web`, and `run` (all three on one loop).

Each adapter module is imported only when its command runs: a process pays only for its
own libraries.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
from collections.abc import Callable
from contextlib import nullcontext

from cli.database import OK, engine_of, up_to_date_session
from cli.miniapp import web_app
from db.config import Settings
from db.session import make_session_factory

log = logging.getLogger(__name__)


def _entry(module: str, name: str) -> Callable:
    """module.name, imported now: each process pays only for its own libraries."""
    return getattr(importlib.import_module(module), name)


def bot(args: argparse.Namespace, settings: Settings) -> int:
    return _entry("bot.__main__", "main")() or OK


def worker(args: argparse.Namespace, settings: Settings) -> int:
    return _entry("scheduler.__main__", "main")() or OK


def web(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.telegram_webhook_url:
        from scheduler.web import check_web_settings, make_server

        check_web_settings(settings)
        with engine_of(settings) as engine:
            make_server(web_app(settings, make_session_factory(engine)), settings).run()
        return OK
    # Webhook mode: Telegram's updates arrive here too, so the bot runs in this process
    # (behind the same PORT as Twilio's webhooks); the worker stays its own process.
    with up_to_date_session(settings):  # refuses a database that is not up to date
        pass
    asyncio.run(run_all(settings, worker=False))
    return OK


def run(args: argparse.Namespace, settings: Settings) -> int:
    with up_to_date_session(settings):  # refuses a database that is not up to date
        pass
    asyncio.run(run_all(settings))
    return OK


SERVE = {"bot": bot, "worker": worker, "web": web, "run": run}


def stop_on_signals() -> asyncio.Event:
    """Set by the first Ctrl-C or SIGTERM; a second Ctrl-C interrupts at once."""
    loop, stop = asyncio.get_running_loop(), asyncio.Event()

    def first(sig: signal.Signals) -> None:
        stop.set()
        loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, first, sig)
    return stop


async def run_all(settings: Settings, *, worker: bool = True) -> None:
    """Bot, worker (unless worker=False) and web on one loop until Ctrl-C or SIGTERM."""
    from bot.serve import running_bot
    from scheduler.serve import running_web, running_worker
    from scheduler.web import check_web_settings

    stop = stop_on_signals()
    with engine_of(settings) as engine:
        factory = make_session_factory(engine)
        check_web_settings(settings)  # refuses missing settings before anything runs
        jobs = running_worker(settings, factory) if worker else nullcontext()
        async with running_bot(settings, factory) as app, jobs:
            web = web_app(settings, factory, app)
            async with running_web(web, settings, stopped=stop):
                what = "bot, worker and web are" if worker else "bot and web are"
                log.info("%s running; Ctrl-C stops them", what)
                await stop.wait()
    log.info("stopped")
