"""Rows made in Python and written in bulk: ids handed out ahead, Core inserts or COPY."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session

from db.models import Base

CHUNK = 5_000

_RESERVE = text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)")


# One row to insert: column name -> value.
Row = dict[str, Any]


class _Ids:
    """Primary keys handed out in Python, so rows can point at each other before insert."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.free: dict[str, Iterator[int]] = {}
        self.block: dict[str, int] = {}

    def next(self, table: Table) -> int:
        for _ in range(2):
            value = next(self.free.setdefault(table.name, iter(())), None)
            if value is not None:
                return value
            self.free[table.name] = self._block(table)
        raise RuntimeError(f"no ids for {table.name}")

    def _block(self, table: Table) -> Iterator[int]:
        if self.postgres:
            # Sequences are shared with concurrent writers, so reserve from them; blocks
            # grow from 16 so a handful of staff rows leaves no big gap in their ids.
            size = self.block[table.name] = min(CHUNK, 2 * self.block.get(table.name, 8))
            rows = self.session.execute(_RESERVE, {"t": table.name, "n": size})
            return iter([row[0] for row in rows])
        # SQLite: the write lock is held (BEGIN IMMEDIATE), so max(id) cannot move under us.
        top = self.session.execute(select(func.max(table.c.id))).scalar() or 0
        return iter(range(top + 1, top + 1 + 10**12))


class RowWriter:
    """Generates rows with one random.Random; writes them in chunks (Core inserts, or COPY)."""

    def __init__(
        self, session: Session, rng: random.Random, today: date, tz: ZoneInfo, minor_units: int
    ) -> None:
        self.session, self.rng, self.today, self.tz = session, rng, today, tz
        self.minor_units = minor_units
        self.ids = _Ids(session)
        self.rows: dict[Table, list[Row]] = {}
        self.counts: Counter[str] = Counter()

    def at(self, day: date, hour: int) -> datetime:
        return datetime.combine(day, time(hour, self.rng.randrange(60)), self.tz).astimezone(UTC)

    def add(self, model: type[Base], **row: Any) -> Row:
        table = model.__table__
        if "id" in table.c and "id" not in row:
            row = {"id": self.ids.next(table), **row}
        self.rows.setdefault(table, []).append(row)
        self.counts[table.name] += 1
        return row

    def flush(self) -> None:
        for table in Base.metadata.sorted_tables:  # parents before children
            rows = self.rows.get(table, [])
            if rows and self.ids.postgres:
                _copy(self.session, table, rows)
                continue
            for start in range(0, len(rows), CHUNK):
                self.session.execute(insert(table), rows[start : start + CHUNK])
        self.rows = {}


def _copy(session: Session, table: Table, rows: list[Row]) -> None:
    """PostgreSQL's COPY: several times faster than executemany for bulk rows."""
    from psycopg.types.json import JsonDumper

    names = list(rows[0])
    driver = session.connection().connection.driver_connection
    assert driver is not None, "a live connection has its psycopg connection"
    cursor = driver.cursor()
    # StrEnums are str first in their MRO, so psycopg writes their values; dicts are JSON.
    cursor.adapters.register_dumper(dict, JsonDumper)
    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[name] for name in names])
