"""The `vasooli` command line: the front door for people, the one place wiring bot, worker, web."""

# This module parses the arguments (the docstring above is `vasooli --help`'s description)
# and dispatches to the command's module.
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from cli import database, staff
from cli.database import FAILED, USAGE, UserError, safe_url
from cli.demo import add_demo
from cli.processes import SERVE
from db import process
from db.config import SettingsError, load_settings
from db.models import Role
from db.services.errors import ServiceError

MAX_SEED = 5_000_000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
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
    ).set_defaults(func=database.db_upgrade)

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
    invite.set_defaults(func=staff.invite)

    staff_ = sub.add_parser("staff", parents=[common], help="staff members")
    staff_sub = staff_.add_subparsers(dest="staff_command", required=True, metavar="command")
    staff_sub.add_parser(
        "list", parents=[common], help="every staff member, oldest first"
    ).set_defaults(func=staff.staff_list)

    _add_seed(sub, common)
    for name, what in (
        ("bot", "the Telegram bot (polling, or webhook if TELEGRAM_WEBHOOK_URL)"),
        ("worker", "the scheduler: reminders and the SMS outbox"),
        ("web", "Twilio callbacks, inbound SMS, health check on PORT"),
        ("run", "bot, worker and web together in one process"),
    ):
        sub.add_parser(name, parents=[common], help=what).set_defaults(func=SERVE[name])
    add_demo(sub, common)
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
    seed.set_defaults(func=database.seed)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; 0 when it worked, 2 for bad input or settings, 1 for other failures."""
    args = build_parser().parse_args(argv)
    process.setup_logging(verbose=getattr(args, "verbose", False))
    url = "?"
    try:
        settings = load_settings()
        url = safe_url(settings.database_url)
        return args.func(args, settings)
    except (SettingsError, ValidationError) as exc:
        return process.report_settings_error("vasooli", exc)
    except (ServiceError, UserError) as exc:
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


if __name__ == "__main__":
    sys.exit(main())
