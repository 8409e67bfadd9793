"""The models and the migrations must describe the same schema; data migrations do their job."""

import os
import uuid
from contextlib import contextmanager

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from db.migrate import alembic_config, drift, upgrade
from db.models import Base
from db.session import make_engine


def test_models_and_migrations_agree(engine):
    assert drift(engine) == []


def test_every_model_table_exists(engine):
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


# --- 0005: suppression kinds, lifts, streaks (a fresh database of the same dialect) ---------


@contextmanager
def _fresh_engine(tmp_path):
    """An empty database: a SQLite file, or a new PostgreSQL database beside the test one."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        eng = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield eng
        eng.dispose()
        return
    name = f"vasooli_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    eng = make_engine(url.rsplit("/", 1)[0] + "/" + name)
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name}"))
        admin.dispose()


def _downgrade(engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def test_0005_lifts_single_30003_suppressions_and_downgrades(tmp_path):
    with _fresh_engine(tmp_path) as eng:
        upgrade(eng, "0003")
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO suppression (phone, reason, error_code, created_at) VALUES "
                    "('+919800000001', 'unreachable handset', '30003', CURRENT_TIMESTAMP), "
                    "('+919800000002', 'landline or unreachable carrier', '30006', "
                    "CURRENT_TIMESTAMP)"
                )
            )
        upgrade(eng, "0005")
        with eng.connect() as conn:
            kept = conn.execute(text("SELECT phone, kind FROM suppression")).all()
            lifts = conn.execute(
                text("SELECT phone, kind, via, error_code FROM suppression_lift")
            ).all()
        assert [tuple(r) for r in kept] == [("+919800000002", "permanent")]
        assert [tuple(r) for r in lifts] == [("+919800000001", "unreachable", "migration", "30003")]
        _downgrade(eng, "0003")
        tables = set(inspect(eng).get_table_names())
        assert not {"suppression_lift", "unreachable_streak"} & tables
        assert "kind" not in {c["name"] for c in inspect(eng).get_columns("suppression")}
        upgrade(eng, "0005")


# --- 0009: approvals (new tables; a downgrade never drops a request) -----------------------


def test_0009_adds_the_approval_tables_and_keeps_requests_on_downgrade(tmp_path):
    with _fresh_engine(tmp_path) as eng:
        upgrade(eng, "0009")
        assert {"approval_request", "approval_card"} <= set(inspect(eng).get_table_names())
        _downgrade(eng, "0008")
        assert "approval_request" not in set(inspect(eng).get_table_names())
        upgrade(eng, "0009")
        with eng.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO staff (telegram_user_id, name, role, state, failed_logins, "
                    "created_at, updated_at) VALUES (1, 'M', 'manager', 'active', 0, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO approval_request (kind, state, payload, approver_role, "
                    "requested_by_id, created_at) VALUES ('write_off', 'pending', '{}', "
                    "'manager', (SELECT id FROM staff), CURRENT_TIMESTAMP)"
                )
            )
        with pytest.raises(RuntimeError, match="approval requests are kept"):
            _downgrade(eng, "0008")
