"""the finance role: ck_role on staff and invite admits 'finance'

Finance reads what an admin reads and changes nothing (issue 13; the rule is in
db/services/access.py). Only the CHECK constraint of the two role columns changes.

On SQLite the CHECK is changed in place, by SQLite's documented procedure for schema changes
that leave the stored data as it is (writable_schema, then a new schema_version), as 0006
does: batch mode would rebuild the tables, and staff is referred to by most others.

Revision ID: 0008
Revises: 0010 (after h/disputes' 0010; the API's 0007 may come between when merged)
Create Date: 2026-12-07 23:55:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TABLES = ("staff", "invite")
_OLD = "'admin', 'manager', 'agent'"
_NEW = _OLD + ", 'finance'"


def _sqlite_rewrite(old: str, new: str) -> None:
    """Edit the CREATE TABLE text of the role tables in place (no data changes)."""
    conn = op.get_bind()
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar()
    conn.exec_driver_sql("PRAGMA writable_schema=ON")
    for table in _TABLES:
        sql = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (table,)
        ).scalar()
        clause = "role IN ({}))"
        if clause.format(old) not in sql:
            raise RuntimeError(f"{table}: unexpected schema, ck_role not found")
        sql = sql.replace(clause.format(old), clause.format(new))
        conn.exec_driver_sql(
            "UPDATE sqlite_master SET sql=? WHERE type='table' AND name=?", (sql, table)
        )
    conn.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema=OFF")
    if conn.exec_driver_sql("PRAGMA integrity_check").scalar() != "ok":
        raise RuntimeError("integrity_check failed after the schema change")


def _change(old: str, new: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rewrite(old, new)
        return
    for table in _TABLES:
        op.drop_constraint("ck_role", table, type_="check")
        op.create_check_constraint("ck_role", table, f"role IN ({new})")


def upgrade() -> None:
    _change(_OLD, _NEW)


def downgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        kept = bind.exec_driver_sql(f"SELECT count(*) FROM {table} WHERE role = 'finance'").scalar()
        if kept:
            # The old CHECK cannot hold these rows, and staff are never deleted.
            raise RuntimeError(f"{kept} {table} rows have the finance role; change them first")
    _change(_NEW, _OLD)
