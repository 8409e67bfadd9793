"""`vasooli demo`: the real bot, worker and web app on a sample agency, chat in this terminal.

It wires the sandboxes (a local Telegram, a local Twilio) that product code never imports.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from pathlib import Path

from sqlalchemy import make_url

from cli.database import OK, UserError, engine_of
from cli.miniapp import miniapp_line, with_miniapp
from cli.processes import stop_on_signals
from db import process
from db.config import Settings
from db.session import make_session_factory

log = logging.getLogger(__name__)

_DEMO_SETTINGS: dict[str, object] = {
    # The demo shows SMS at any hour; the banner says so.
    "sms_allowed_hours": "00:00-23:59",
    "dispatch_interval_seconds": 0.5,
    "sms_rate_per_second": 50.0,
    "session_idle_minutes": 60 * 24 * 365,
    "session_max_hours": 24 * 365 * 10,
    "bot_commands_per_minute": 600,
    # The banner's Mini App link carries a signed initData: good for the demo's day.
    "miniapp_auth_max_age_seconds": 86400,
}


def add_demo(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="the whole product on this machine, no accounts needed",
        description="The real bot, worker and web app on a sample agency (a SQLite file), "
        "against a local Telegram and a local Twilio, with a chat in this terminal.",
    )
    demo.add_argument("--fresh", action="store_true", help="delete the demo database first")
    demo.add_argument(
        "--as",
        dest="as_",
        choices=["agent", "manager", "admin"],
        default="agent",
        help="who you are at first (default agent)",
    )
    demo.add_argument(
        "--script",
        metavar="FILE",
        help="type FILE's lines instead of the keyboard, print the transcript, stop",
    )
    demo.add_argument(
        "--db",
        metavar="PATH",
        default="vasooli-demo.db",
        help="the demo's SQLite file (default ./vasooli-demo.db)",
    )
    demo.set_defaults(func=demo_command)


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).expanduser().resolve()


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    begun, path = time.perf_counter(), Path(args.db).expanduser().resolve()
    if not path.parent.is_dir():
        raise UserError(f"--db: there is no folder {path.parent}")
    if args.fresh and _sqlite_file(settings.database_url) == path:
        raise UserError("--fresh would delete DATABASE_URL's database: give another --db")
    try:
        script = Path(args.script).read_text("utf-8").splitlines() if args.script else None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the script {args.script}: {exc}") from None
    if args.fresh:
        for extra in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
    settings = settings.model_copy(update={**_DEMO_SETTINGS, "database_url": f"sqlite:///{path}"})
    process.log_to_file(path.with_suffix(".log"))  # the terminal is the chat's
    code = asyncio.run(_demo_main(args, settings, path, script, begun))
    stray = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if stray:  # every server and worker thread should have been joined by now
        log.warning("threads still running after the demo: %s", ", ".join(stray))
    return code


async def _demo_main(
    args: argparse.Namespace, settings: Settings, path: Path, script: list[str] | None, begun: float
) -> int:
    from bot import terminal
    from bot.serve import running_bot
    from bot.terminal.view import banner_lines
    from db.sample.demo import prepare_demo
    from scheduler.sandbox.demo_world import DemoWorld

    stop = stop_on_signals()
    files = path.with_name(path.stem + "-files")
    files.mkdir(exist_ok=True)
    with engine_of(settings) as engine:
        agency = await asyncio.to_thread(prepare_demo, engine, settings)
        factory = make_session_factory(engine)
        telegram, world = terminal.open_sandbox(agency.people, str(files)), DemoWorld(factory)
        try:
            settings = settings.model_copy(
                update=world.settings_update() | terminal.bot_settings_update(telegram)
            )
            hooks = terminal.DemoHooks(world.text_in, world.move_clock, world.wait_sms)
            chat = terminal.TerminalChat(telegram, agency.people, hooks, start_as=args.as_)
            async with (
                world.serving(settings, chat.sms, wrap=with_miniapp(settings, factory)),
                running_bot(settings, factory, poll_timeout=1),
            ):
                with chat.attached():
                    lines = banner_lines(
                        agency,
                        settings,
                        db_path=str(path),
                        log_path=str(path.with_suffix(".log")),
                        files_dir=str(files),
                        seconds=time.perf_counter() - begun,
                        me=chat.me,
                    )
                    chat.banner([*lines[:-1], miniapp_line(agency, settings), lines[-1]])
                    if script is None:
                        await chat.run_interactive(stop)
                    else:
                        await chat.run_script(script, stop)
        finally:
            world.close()
            telegram.stop()
    chat.view.note("Demo stopped.")
    return OK
