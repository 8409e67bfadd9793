"""archive instead of delete: loan.archived_*, events archived/restored, loan children RESTRICT

Nothing deletes a financial record any more (issue 9 item 8): a loan is archived, and the
foreign keys from its installments, payments, allocations, promises, contacts and history
refuse a delete instead of cascading it.

On SQLite the foreign key actions and the CHECK of the event kinds are changed in place, by
SQLite's documented procedure for schema changes that leave the stored data as it is
(writable_schema, then a new schema_version). Batch mode would rebuild each table, and its
DROP TABLE, with foreign keys on inside the migration's transaction, would cascade.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-07 19:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, column, referred table): each was ON DELETE CASCADE.
_FKS = [
    ("installment", "loan_id", "loan"),
    ("payment", "loan_id", "loan"),
    ("payment_allocation", "payment_id", "payment"),
    ("payment_allocation", "installment_id", "installment"),
    ("promise", "loan_id", "loan"),
    ("contact", "loan_id", "loan"),
    ("loan_event", "loan_id", "loan"),
]
_OLD_KINDS = (
    "'created', 'edited', 'reassigned', 'payment', 'payment_reversed', 'late_fee', 'promise', "
    "'promise_kept', 'promise_broken', 'contact', 'closed', 'reopened', 'written_off', "
    "'reminder', 'inbound_sms'"
)
_NEW_KINDS = _OLD_KINDS + ", 'archived', 'restored'"
_BY_FK_SQLITE = ("archived_by_id INTEGER REFERENCES staff (id)", "archived_by_id INTEGER")


def _sqlite_rewrite(replacements: dict[str, list[tuple[str, str]]]) -> None:
    """Edit the CREATE TABLE text of tables in place (no data changes; see the docstring)."""
    conn = op.get_bind()
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar()
    conn.exec_driver_sql("PRAGMA writable_schema=ON")
    for table, pairs in replacements.items():
        sql = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type='table' AND name=?", (table,)
        ).scalar()
        for old, new in pairs:
            if old not in sql:
                raise RuntimeError(f"{table}: unexpected schema, {old!r} not found")
            sql = sql.replace(old, new)
        conn.exec_driver_sql(
            "UPDATE sqlite_master SET sql=? WHERE type='table' AND name=?", (sql, table)
        )
    conn.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema=OFF")
    if conn.exec_driver_sql("PRAGMA integrity_check").scalar() != "ok":
        raise RuntimeError("integrity_check failed after the schema change")


def _fk_actions_sqlite(old: str, new: str) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, referred in _FKS:
        clause = f"FOREIGN KEY({column}) REFERENCES {referred} (id) ON DELETE "
        out.setdefault(table, []).append((clause + old, clause + new))
    return out


def _fk_actions_pg(new: str) -> None:
    for table, column, referred in _FKS:
        name = f"{table}_{column}_fkey"
        op.drop_constraint(name, table, type_="foreignkey")
        op.create_foreign_key(name, table, referred, [column], ["id"], ondelete=new)


def _kinds_pg(kinds: str) -> None:
    op.drop_constraint("ck_loaneventkind", "loan_event", type_="check")
    op.create_check_constraint("ck_loaneventkind", "loan_event", f"kind IN ({kinds})")


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("loan", sa.Column("archived_at", db.models.UTCDateTime(timezone=True)))
    op.add_column("loan", sa.Column("archive_reason", sa.String(length=300)))
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql(f"ALTER TABLE loan ADD COLUMN {_BY_FK_SQLITE[0]}")
        rewrites = _fk_actions_sqlite("CASCADE", "RESTRICT")
        rewrites["loan_event"].append((_OLD_KINDS + ")", _NEW_KINDS + ")"))
        _sqlite_rewrite(rewrites)
        return
    op.add_column("loan", sa.Column("archived_by_id", sa.BigInteger()))
    op.create_foreign_key("loan_archived_by_id_fkey", "loan", "staff", ["archived_by_id"], ["id"])
    _fk_actions_pg("RESTRICT")
    _kinds_pg(_NEW_KINDS)


def downgrade() -> None:
    bind = op.get_bind()
    archived = bind.exec_driver_sql(
        "SELECT count(*) FROM loan WHERE archived_at IS NOT NULL"
    ).scalar()
    if archived:
        # Dropping the columns would silently bring archived loans back into every list.
        raise RuntimeError(f"{archived} loans are archived; restore them before downgrading")
    kept = bind.exec_driver_sql(
        "SELECT count(*) FROM loan_event WHERE kind IN ('archived', 'restored')"
    ).scalar()
    if kept:
        # History is never deleted, and the old CHECK cannot hold these rows.
        raise RuntimeError(f"{kept} history rows record archiving; 0006 cannot be undone")
    if bind.dialect.name == "sqlite":
        rewrites = _fk_actions_sqlite("RESTRICT", "CASCADE")
        rewrites["loan_event"].append((_NEW_KINDS + ")", _OLD_KINDS + ")"))
        rewrites["loan"] = [_BY_FK_SQLITE]
        _sqlite_rewrite(rewrites)
        for column in ("archived_by_id", "archive_reason", "archived_at"):
            bind.exec_driver_sql(f"ALTER TABLE loan DROP COLUMN {column}")
        return
    _kinds_pg(_OLD_KINDS)
    _fk_actions_pg("CASCADE")
    op.drop_constraint("loan_archived_by_id_fkey", "loan", type_="foreignkey")
    op.drop_column("loan", "archived_by_id")
    op.drop_column("loan", "archive_reason")
    op.drop_column("loan", "archived_at")
