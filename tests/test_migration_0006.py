"""Migration 0006 (archive instead of delete): rows kept, deletes refused, and undone cleanly."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from db.migrate import alembic_config, drift, upgrade
from db.session import make_engine


@pytest.fixture
def fresh(database_url: str, tmp_path) -> Iterator[Engine]:
    """An empty database of the suite's kind (a new PostgreSQL database when PG is tested)."""
    if not database_url.startswith("postgresql"):
        eng = make_engine(f"sqlite:///{tmp_path / 'mig.db'}")
        yield eng
        eng.dispose()
        return
    url = make_url(database_url)
    name = f"{url.database}_m{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng = make_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}"'))
        admin.dispose()


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _seed(conn) -> None:
    conn.execute(
        text(
            "INSERT INTO staff (id, telegram_user_id, name, role, state, failed_logins, created_at,"
            " updated_at) VALUES (1, 5, 'A', 'admin', 'active', 0, :t, :t)"
        ),
        {"t": "2026-01-01"},
    )
    conn.execute(
        text(
            "INSERT INTO borrower (id, name, name_key, phone, created_at, updated_at)"
            " VALUES (1, 'B', 'b', '+919800000001', :t, :t)"
        ),
        {"t": "2026-01-01"},
    )
    conn.execute(
        text(
            "INSERT INTO loan (id, loan_number, borrower_id, agent_id, principal, interest_method,"
            " interest_rate, installments_count, frequency, first_due_date, amount_payable,"
            " fees_charged, amount_paid, state, version, created_at, updated_at) VALUES (1, 'L-1',"
            " 1, 1, 100, 'none', 0, 1, 'monthly', '2026-02-01', 100, 0, 40, 'active', 1, :t, :t)"
        ),
        {"t": "2026-01-01"},
    )
    conn.execute(
        text(
            "INSERT INTO installment (id, loan_id, seq, due_date, principal_due, interest_due,"
            " fee_due, amount_paid, fee_paid) VALUES (1, 1, 1, '2026-02-01', 100, 0, 0, 40, 0)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO payment (id, loan_id, amount, method, paid_at, created_at)"
            " VALUES (1, 1, 40, 'cash', :t, :t)"
        ),
        {"t": "2026-01-02"},
    )
    conn.execute(
        text(
            "INSERT INTO payment_allocation (id, payment_id, installment_id, fee_amount, amount)"
            " VALUES (1, 1, 1, 0, 40)"
        )
    )


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()


def test_0006_keeps_rows_refuses_deletes_and_downgrades(fresh):
    upgrade(fresh, "0003")
    with fresh.begin() as conn:
        _seed(conn)
    upgrade(fresh, "head")
    assert drift(fresh) == []
    assert [_count(fresh, t) for t in ("loan", "payment", "payment_allocation")] == [1, 1, 1]
    # The database itself now refuses to cascade a delete of a loan or a payment.
    for table in ("loan", "payment", "installment"):
        with pytest.raises(IntegrityError), fresh.begin() as conn:
            conn.execute(text(f"DELETE FROM {table} WHERE id = 1"))
    with fresh.begin() as conn:
        conn.execute(
            text("UPDATE loan SET archived_at = :t, archive_reason = 'dup' WHERE id = 1"),
            {"t": "2026-03-01"},
        )
        conn.execute(
            text("INSERT INTO loan_event (loan_id, kind, created_at) VALUES (1, 'archived', :t)"),
            {"t": "2026-03-01"},
        )
    # Undoing it would bring an archived loan back into every list, and lose its history.
    with pytest.raises(RuntimeError, match="archived"):
        _downgrade(fresh, "0003")
    with fresh.begin() as conn:
        conn.execute(text("UPDATE loan SET archived_at = NULL WHERE id = 1"))
        conn.execute(text("UPDATE loan_event SET kind = 'edited' WHERE kind = 'archived'"))
    _downgrade(fresh, "0003")
    assert [_count(fresh, t) for t in ("loan", "payment", "payment_allocation")] == [1, 1, 1]
    with fresh.connect() as conn:
        columns = conn.execute(text("SELECT * FROM loan")).keys()
    assert "archived_at" not in columns
    upgrade(fresh, "head")
    assert drift(fresh) == []
