"""The `vasooli` command line: the front door for people, the one place wiring bot, worker, web."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, make_url, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db import clock
from db.config import Settings, SettingsError, load_settings
from db.models import Role, Staff
from db.services.errors import ServiceError
from db.session import make_engine, make_session_factory

log = logging.getLogger(__name__)

OK, FAILED, USAGE = 0, 1, 2
MAX_SEED = 5_000_000
_QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "alembic")


class UserError(Exception):
    """Bad input or a database not ready: one line for the operator, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line instead of argparse's usage block: scripts and people both read it.
        self.exit(USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low} to {high}")
        return int(text)

    return parse


def build_parser() -> argparse.ArgumentParser:
    """Every command and flag; `vasooli <command> --help` describes each."""
    common = _Parser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debug details"
    )
    # No set_defaults(verbose=False): the parents share one action object, so it would also
    # reset the subcommand's default and `vasooli --verbose bot` would lose the flag.
    parser = _Parser(prog="vasooli", parents=[common], description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    db = sub.add_parser("db", parents=[common], help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="command")
    db_sub.add_parser(
        "upgrade", parents=[common], help="apply every migration (alembic head)"
    ).set_defaults(func=_db_upgrade)

    invite = sub.add_parser("invite", parents=[common], help="print a one-time invite code")
    invite.add_argument(
        "--role",
        required=True,
        choices=[r.value for r in Role],
        help="the role the invited person gets",
    )
    invite.add_argument(
        "--hours",
        type=_count(1, 24 * 30),
        default=None,
        help="hours the code stays valid (default INVITE_VALID_HOURS, 72)",
    )
    invite.set_defaults(func=_invite)

    staff = sub.add_parser("staff", parents=[common], help="staff members")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True, metavar="command")
    staff_sub.add_parser(
        "list", parents=[common], help="every staff member, oldest first"
    ).set_defaults(func=_staff_list)

    _add_seed(sub, common)
    for name, what in (
        ("bot", "the Telegram bot (polling, or webhook if TELEGRAM_WEBHOOK_URL)"),
        ("worker", "the scheduler: reminders and the SMS outbox"),
        ("web", "Twilio callbacks, inbound SMS, health check on PORT"),
        ("run", "bot, worker and web together in one process"),
    ):
        sub.add_parser(name, parents=[common], help=what).set_defaults(func=_SERVE[name])
    _add_demo(sub, common)
    return parser


def _add_seed(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    seed = sub.add_parser(
        "seed",
        parents=[common],
        help="add deterministic sample data (never in production)",
        description="Add sample staff, borrowers and loans in every state. Running it again "
        "adds more; the sample staff (Telegram ids 900000001 and up) are reused.",
    )
    seed.add_argument("--borrowers", type=_count(0, MAX_SEED), default=400, help="default 400")
    seed.add_argument("--loans", type=_count(0, MAX_SEED), default=500, help="default 500")
    seed.add_argument(
        "--seed",
        type=_count(0, 2**31),
        default=1,
        help="random seed: the same seed gives the same data (default 1)",
    )
    seed.add_argument("--agents", type=_count(1, 1000), default=3, help="default 3")
    seed.set_defaults(func=_seed)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 when it worked, 2 for bad input or settings, 1 for other failures."""
    args = build_parser().parse_args(argv)
    _setup_logging(getattr(args, "verbose", False))
    url = "?"
    try:
        settings = load_settings()
        url = _safe_url(settings.database_url)
        return args.func(args, settings)
    except (SettingsError, ServiceError, UserError) as exc:
        print(f"vasooli: {exc}", file=sys.stderr)
        return USAGE
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith(("bot", "scheduler")):
            raise
        print(f"vasooli: `vasooli {args.command}` is not available: {exc}", file=sys.stderr)
        return FAILED
    except OperationalError as exc:
        reason = (str(exc.orig).strip().splitlines() or ["unknown error"])[0]
        print(f"vasooli: the database at {url} failed: {reason}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        return 130


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in _QUIET_LOGGERS:
        # Per-request and per-job lines drown everything else unless asked for.
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


# -- database commands ----------------------------------------------------------------------
def _safe_url(url: str) -> str:
    # URL.set(password=None) keeps the password; the NamedTuple's _replace drops it.
    return make_url(url)._replace(password=None).render_as_string(hide_password=False)


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _revisions(engine: Engine) -> tuple[str | None, str | None]:
    """(the database's revision, the newest migration's)."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from db.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision(), head


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    """A session on an up-to-date database; the caller commits."""
    with _engine(settings) as engine:
        current, head = _revisions(engine)
        if current != head:
            raise UserError(
                f"the database at {_safe_url(settings.database_url)} is not up to "
                "date: run `vasooli db upgrade` first"
            )
        with make_session_factory(engine)() as session:
            yield session


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from db.migrate import upgrade

    with _engine(settings) as engine:
        upgrade(engine)
        current, _ = _revisions(engine)
    print(f"database at {_safe_url(settings.database_url)} is up to date (revision {current})")
    return OK


def _invite(args: argparse.Namespace, settings: Settings) -> int:
    from db.services.staff.members import create_invite

    hours = args.hours or settings.invite_valid_hours
    with _session(settings) as session:
        invite = create_invite(session, actor=None, role=Role(args.role), valid_hours=hours)
        session.commit()
    until = invite.expires_at.astimezone(settings.tz)
    print(
        f"Invite for a new {invite.role.value}: single use, valid until "
        f"{until:%Y-%m-%d %H:%M} {settings.agency_timezone} ({hours} hours)."
    )
    username = (settings.telegram_bot_username or "").strip().lstrip("@")
    if username:
        print(f"Open in Telegram: https://t.me/{username}?start={invite.code}")
    else:
        print("Send the bot /start followed by this code (set TELEGRAM_BOT_USERNAME for a link):")
    print(invite.code)
    return OK


def _when(moment: datetime | None, settings: Settings) -> str:
    return f"{moment.astimezone(settings.tz):%Y-%m-%d %H:%M}" if moment else "never"


def _staff_list(args: argparse.Namespace, settings: Settings) -> int:
    with _session(settings) as session:
        staff = session.scalars(select(Staff).order_by(Staff.id)).all()
    if not staff:
        print("No staff yet: make the first admin with `vasooli invite --role admin`.")
        return OK
    rows = [("id", "name", "role", "state", "telegram id", "last login")] + [
        (
            str(s.id),
            s.name,
            s.role.value,
            s.state.value,
            str(s.telegram_user_id),
            _when(s.last_login_at, settings),
        )
        for s in staff
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return OK


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    from db.seed import seed

    if args.loans and not args.borrowers:
        raise UserError("--borrowers must be at least 1 when --loans is above 0")
    with _session(settings) as session:
        report = seed(
            session,
            borrowers=args.borrowers,
            loans=args.loans,
            seed=args.seed,
            agents=args.agents,
            today=clock.today(settings.tz),
            tz=settings.tz,
            region=settings.default_phone_region,
            minor_units=settings.minor_units,
        )
        session.commit()
    print(
        f"Added {report.loans} loans ({report.installments} installments, {report.payments} "
        f"payments, {report.promises} promises), {report.borrowers} borrowers and "
        f"{report.staff_created} staff in {report.seconds:.1f} s."
    )
    print("Loans by state: " + ", ".join(f"{shape.value} {n}" for shape, n in report.shapes))
    return OK


# -- long-running processes (each module is imported only when its command runs) -------------
def _entry(module: str, name: str) -> Callable:
    """module.name, imported now: each process pays only for its own libraries."""
    return getattr(importlib.import_module(module), name)


def _bot(args: argparse.Namespace, settings: Settings) -> int:
    return _entry("bot.__main__", "main")() or OK


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    return _entry("scheduler.__main__", "main")() or OK


def _web(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.telegram_webhook_url:
        from scheduler.web import check_web_settings, make_server

        check_web_settings(settings)
        with _engine(settings) as engine:
            make_server(_web_app(settings, make_session_factory(engine)), settings).run()
        return OK
    # Webhook mode: Telegram's updates arrive here too, so the bot runs in this process
    # (behind the same PORT as Twilio's webhooks); the worker stays its own process.
    with _session(settings):  # refuses a database that is not up to date
        pass
    asyncio.run(_run_all(settings, worker=False))
    return OK


# -- run and demo: bot, worker and web on one event loop -----------------------------------
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


def _add_demo(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    demo.set_defaults(func=_demo)


def _stop_on_signals() -> asyncio.Event:
    """Set by the first Ctrl-C or SIGTERM; a second Ctrl-C interrupts at once."""
    loop, stop = asyncio.get_running_loop(), asyncio.Event()

    def first(sig: signal.Signals) -> None:
        stop.set()
        loop.remove_signal_handler(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, first, sig)
    return stop


def _run(args: argparse.Namespace, settings: Settings) -> int:
    with _session(settings):  # refuses a database that is not up to date
        pass
    asyncio.run(_run_all(settings))
    return OK


async def _run_all(settings: Settings, *, worker: bool = True) -> None:
    """Bot, worker (unless worker=False) and web on one loop until Ctrl-C or SIGTERM."""
    from bot.serve import running_bot
    from scheduler.serve import running_web, running_worker
    from scheduler.web import check_web_settings

    stop = _stop_on_signals()
    with _engine(settings) as engine:
        factory = make_session_factory(engine)
        check_web_settings(settings)  # refuses missing settings before anything runs
        jobs = running_worker(settings, factory) if worker else nullcontext()
        async with running_bot(settings, factory) as app, jobs:
            web = _web_app(settings, factory, app)
            async with running_web(web, settings, stopped=stop):
                what = "bot, worker and web are" if worker else "bot and web are"
                log.info("%s running; Ctrl-C stops them", what)
                await stop.wait()
    log.info("stopped")


def _web_app(settings: Settings, factory: sessionmaker[Session], bot_app: Any = None) -> Any:
    """One ASGI app on one port: Telegram's webhook (when set), the Mini App at /app,
    Twilio's webhooks and the health check."""
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute, Mount

    from bot.miniapp import build_app as build_miniapp
    from bot.serve import webhook_route
    from scheduler.web import build_web_app

    routes: list[BaseRoute] = []
    if bot_app is not None and settings.telegram_webhook_url:
        routes.append(webhook_route(bot_app, settings))
    if settings.telegram_bot_token is not None:
        routes.append(Mount("/app", build_miniapp(settings, factory)))
    else:
        log.info("the Mini App (/app/) is off: TELEGRAM_BOT_TOKEN is not set")
    routes.append(Mount("/", build_web_app(settings, factory)))
    return Starlette(routes=routes)


def _with_miniapp(settings: Settings, factory: sessionmaker[Session]) -> Callable[[Any], Any]:
    """Put the Mini App at /app beside a web app (the demo's, on its own port)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from bot.miniapp import build_app as build_miniapp

    miniapp = build_miniapp(settings, factory)
    return lambda web: Starlette(routes=[Mount("/app", miniapp), Mount("/", web)])


def _miniapp_line(agency: Any, settings: Settings) -> str:
    """The demo banner's line: the dashboards' local URL, signed in as the demo manager."""
    from urllib.parse import quote

    from bot.miniapp.auth import signed_init_data

    manager = next((p for p in agency.people if p.role is Role.MANAGER), None)
    if manager is None or settings.telegram_bot_token is None:
        return "Dashboards (Mini App): no demo manager to sign in as."
    token = settings.telegram_bot_token.get_secret_value()
    data = signed_init_data(manager.telegram_user_id, manager.name, token, clock.utcnow())
    url = f"{settings.public_base_url}/app/?initData={quote(data)}"
    return f"Dashboards (the Mini App) in a browser, as {manager.name}: {url}"


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).expanduser().resolve()


def _demo(args: argparse.Namespace, settings: Settings) -> int:
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
    handler = logging.FileHandler(path.with_suffix(".log"), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().handlers = [handler]  # the terminal is the chat's; logs go to a file
    logging.captureWarnings(True)  # library warnings too: the terminal shows only the chat
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
    from db.demo_data import prepare_demo
    from scheduler.sandbox.demo_world import DemoWorld

    stop = _stop_on_signals()
    files = path.with_name(path.stem + "-files")
    files.mkdir(exist_ok=True)
    with _engine(settings) as engine:
        agency = await asyncio.to_thread(prepare_demo, engine, settings)
        factory = make_session_factory(engine)
        telegram, world = terminal.open_sandbox(agency.people, str(files)), DemoWorld(factory)
        try:
            settings = settings.model_copy(
                update=world.settings_update() | terminal.bot_settings_update(telegram)
            )
            hooks = terminal.DemoHooks(world.text_in, world.move_clock, world.wait_sms)
            chat = terminal.TerminalChat(telegram, agency.people, hooks, start_as=args.as_)
            with_app = _with_miniapp(settings, factory)
            async with (
                world.serving(settings, chat.sms, wrap=with_app),
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
                    chat.banner([*lines[:-1], _miniapp_line(agency, settings), lines[-1]])
                    if script is None:
                        await chat.run_interactive(stop)
                    else:
                        await chat.run_script(script, stop)
        finally:
            world.close()
            telegram.stop()
    chat.view.note("Demo stopped.")
    return OK


_SERVE = {"bot": _bot, "worker": _worker, "web": _web, "run": _run}

if __name__ == "__main__":
    sys.exit(main())
