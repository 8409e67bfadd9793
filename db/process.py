"""What every Vasooli process does first: its logging, and how a bad setting ends it.

Every entry point (`vasooli` in cli/, `python -m bot`, `python -m scheduler`, `vasooli web`)
goes through here, so they all log alike and fail alike:

- one log format and level (INFO, or DEBUG with `vasooli --verbose`); the chattiest
  libraries at WARNING unless verbose;
- every record masked before any handler sees it (db/redact.py), from the first line on;
- a bad setting (SettingsError, or pydantic's ValidationError from db/config.py) is short
  lines on stderr, one per problem, each naming the setting and what is wrong with it;
  exit code 2; never a traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

from pydantic import ValidationError

from db import redact
from db.config import SettingsError, settings_problems

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SETTINGS_EXIT = 2
# Per-request and per-job lines drown everything else unless asked for.
QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "alembic")

_P = ParamSpec("_P")
_R = TypeVar("_R")
_configured = False


def setup_logging(*, verbose: bool | None = None) -> None:
    """The process's log format and level; secrets masked in every record from now on.

    verbose=None keeps what an earlier call chose: an adapter's main() run by `vasooli bot`
    must not undo `vasooli --verbose`.
    """
    global _configured
    redact.install()
    if _configured and verbose is None:
        return
    # basicConfig leaves a root logger that already has handlers (pytest's) as it is.
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=LOG_FORMAT)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    _configured = True


def log_to_file(path: Path) -> None:
    """Every log record (and library warning) to path, none to the terminal (the demo's)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().handlers = [handler]
    logging.captureWarnings(True)


def report_settings_error(prog: str, exc: SettingsError | ValidationError) -> int:
    """Print the problems as `prog: setting X is invalid: ...` lines; return the exit code."""
    problems = exc.problems if isinstance(exc, SettingsError) else settings_problems(exc)
    for problem in problems:
        print(f"{prog}: {problem}", file=sys.stderr)
    return SETTINGS_EXIT


@contextmanager
def settings_errors_exit(prog: str) -> Iterator[None]:
    """A settings error inside ends the process: short lines on stderr, exit code 2."""
    try:
        yield
    except (SettingsError, ValidationError) as exc:
        raise SystemExit(report_settings_error(prog, exc)) from None


def entry_point(prog: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a process's main(): logging set up first, settings errors as above."""

    def decorate(main: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(main)
        def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            setup_logging()
            with settings_errors_exit(prog):
                return main(*args, **kwargs)

        return run

    return decorate
