"""Engines and session factories; nothing is created at import time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: object) -> None:
    # WAL lets the bot read while the worker writes; foreign keys are off by default in SQLite.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # pysqlite's own transaction handling is disabled above; begin explicitly so SAVEPOINTs
    # work. IMMEDIATE takes the write lock up front: a deferred transaction that later
    # writes can fail at once with SQLITE_BUSY when another process wrote in between.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """An engine for url with Vasooli's connection settings (SQLite pragmas, pool)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 10}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (adapters read them afterwards)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def rows_matched(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE run by Session.execute matched.

    Session.execute types its result as a plain Result; for a DML statement it is a
    CursorResult, the one that has rowcount.
    """
    if not isinstance(result, CursorResult):
        raise TypeError(f"rowcount asked of a {type(result).__name__}, not of an UPDATE/DELETE")
    return result.rowcount
