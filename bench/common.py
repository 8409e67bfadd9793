"""What every benchmark shares: figures and RATIO lines, timing, databases, settings."""

from __future__ import annotations

import logging
import os
import re
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from db import clock
from db.config import Settings, load_settings
from db.migrate import upgrade
from db.session import make_engine, make_session_factory

log = logging.getLogger(__name__)

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


class Goal(StrEnum):
    """How a figure is judged against its goal."""

    AT_MOST = "<="
    AT_LEAST = ">="
    INFO = "info"


@dataclass
class Figure:
    """One measured figure, its goal and whether the goal was met."""

    name: str
    value: float
    goal: float | None
    kind: Goal
    unit: str = ""
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.goal is None or self.kind is Goal.INFO:
            return None
        if self.kind is Goal.AT_MOST:
            return self.value <= self.goal
        return self.value >= self.goal

    def goal_text(self) -> str:
        return "-" if self.goal is None else f"{self.kind.value}{self.goal:g}"

    def ratio_line(self) -> str:
        return f"RATIO {self.name} {self.value:.4g} {self.goal_text()}"


@dataclass
class Bench:
    """One benchmark's run on one database: its lines and figures."""

    name: str
    backend: str
    figures: list[Figure] = field(default_factory=list)

    def say(self, text: str, *args: object) -> None:
        print(f"[{self.name}/{self.backend}] " + (text % args if args else text), flush=True)

    def figure(
        self,
        name: str,
        value: float,
        goal: float | None,
        kind: Goal,
        unit: str = "",
        note: str = "",
    ) -> Figure:
        fig = Figure(f"{self.name}.{name}.{self.backend}", float(value), goal, kind, unit, note)
        self.figures.append(fig)
        self.say(
            "%s = %.4g %s (goal %s)%s",
            name,
            value,
            unit,
            fig.goal_text(),
            f" [{note}]" if note else "",
        )
        return fig

    def finish(self) -> list[Figure]:
        """Print the RATIO lines, last, one per figure."""
        for fig in self.figures:
            print(fig.ratio_line(), flush=True)
        return self.figures


def as_json(fig: Figure) -> dict[str, Any]:
    return {**asdict(fig), "kind": fig.kind.value, "met": fig.met}


# --- timing --------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """The pct percentile (nearest rank) of values."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def latencies(calls: list[Callable[[], Any]]) -> list[float]:
    """Milliseconds each call took, one after the other."""
    return [timed(call)[0] * 1000 for call in calls]


class QueryCounter:
    """Counts the statements an engine executes (SQLAlchemy cursor events)."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.count = engine, 0
        self.statements: list[str] = []

    def _on(self, _conn, _cursor, statement, *_args) -> None:
        # SQLite's explicit BEGIN IMMEDIATE (db/session.py) opens the transaction that
        # PostgreSQL opens implicitly: not a query, so both databases count the same.
        if statement.startswith("BEGIN"):
            return
        self.count += 1
        self.statements.append(statement)

    @contextmanager
    def counting(self) -> Iterator[QueryCounter]:
        self.count, self.statements = 0, []
        event.listen(self.engine, "before_cursor_execute", self._on)
        try:
            yield self
        finally:
            event.remove(self.engine, "before_cursor_execute", self._on)


# --- databases -----------------------------------------------------------------------------


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def pg_url(url: str) -> str:
    """A SQLAlchemy URL with the psycopg 3 driver."""
    return load_settings(database_url=url).database_url


def psycopg_dsn(url: str) -> str:
    """The libpq form of a SQLAlchemy PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(backend: str, url: str | None) -> Iterator[str]:
    """A migrated empty database for one run; made here and dropped afterwards unless given."""
    if url:
        yield url
        return
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="vasooli-bench-") as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    yield from _fresh_postgres()


def _fresh_postgres() -> Iterator[str]:
    import psycopg  # only needed here; SQLite-only runs never load it

    name = f"vasooli_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg_dsn(ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield str(make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text)


# --- the run's context ---------------------------------------------------------------------


@dataclass
class Ctx:
    """One database under benchmark: where it is, its seed and the run's settings."""

    backend: str
    url: str
    engine: Engine
    factory: sessionmaker[Session]
    settings: Settings
    loans: int
    borrowers: int
    today: date
    quick: bool
    smoke: bool = False  # tiny sizes, for tests/test_bench.py
    manager_id: int = 0
    agent_ids: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def session(self) -> Session:
        return self.factory()

    def noon_utc(self) -> datetime:
        """Today at noon in the agency's zone: inside the allowed SMS hours."""
        return datetime.combine(self.today, dtime(12, 0), tzinfo=self.settings.tz).astimezone(UTC)


def bench_settings(url: str, **overrides: Any) -> Settings:
    """Settings for a benchmark: the database, no real providers, whatever else is given."""
    return load_settings(database_url=url, sms_backend="console", _env_file=None, **overrides)


def open_ctx(
    backend: str,
    url: str,
    *,
    loans: int,
    borrowers: int,
    quick: bool,
    smoke: bool = False,
    pool_size: int = 10,
) -> Ctx:
    """Migrate the database at url and return a context around it."""
    settings = bench_settings(url)
    engine = make_engine(settings.database_url, pool_size=pool_size)
    upgrade(engine)
    return Ctx(
        backend,
        settings.database_url,
        engine,
        make_session_factory(engine),
        settings,
        loans,
        borrowers,
        clock.today(settings.tz),
        quick,
        smoke,
    )
