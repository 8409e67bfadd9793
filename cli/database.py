"""The database a command works on, and the commands on it: `db upgrade`, `seed`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, make_url
from sqlalchemy.orm import Session

from db import clock
from db.config import Settings
from db.session import make_engine, make_session_factory

OK, FAILED, USAGE = 0, 1, 2


class UserError(Exception):
    """Bad input or a database not ready: one line for the operator, exit code 2."""


def safe_url(url: str) -> str:
    # URL.set(password=None) keeps the password; the NamedTuple's _replace drops it.
    return make_url(url)._replace(password=None).render_as_string(hide_password=False)


@contextmanager
def engine_of(settings: Settings) -> Iterator[Engine]:
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
def up_to_date_session(settings: Settings) -> Iterator[Session]:
    """A session on an up-to-date database; the caller commits."""
    with engine_of(settings) as engine:
        current, head = _revisions(engine)
        if current != head:
            raise UserError(
                f"the database at {safe_url(settings.database_url)} is not up to "
                "date: run `vasooli db upgrade` first"
            )
        with make_session_factory(engine)() as session:
            yield session


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from db.migrate import upgrade

    with engine_of(settings) as engine:
        upgrade(engine)
        current, _ = _revisions(engine)
    print(f"database at {safe_url(settings.database_url)} is up to date (revision {current})")
    return OK


def seed(args: argparse.Namespace, settings: Settings) -> int:
    from db.agency import agency_of
    from db.sample import seed

    if args.loans and not args.borrowers:
        raise UserError("--borrowers must be at least 1 when --loans is above 0")
    with up_to_date_session(settings) as session:
        report = seed(
            session,
            borrowers=args.borrowers,
            loans=args.loans,
            seed=args.seed,
            agents=args.agents,
            today=clock.today(settings.tz),
            agency=agency_of(settings),
        )
        session.commit()
    print(
        f"Added {report.loans} loans ({report.installments} installments, {report.payments} "
        f"payments, {report.promises} promises), {report.borrowers} borrowers and "
        f"{report.staff_created} staff in {report.seconds:.1f} s."
    )
    print("Loans by state: " + ", ".join(f"{shape.value} {n}" for shape, n in report.shapes))
    return OK
