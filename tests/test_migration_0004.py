"""Migration 0004 (message.loan_version) goes up and down cleanly."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from db.migrate import alembic_config, upgrade
from db.session import make_engine


def _columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("message")}


def test_0004_adds_and_removes_message_loan_version(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        upgrade(engine, "0004")
        assert "loan_version" in _columns(engine)
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        assert "loan_version" not in _columns(engine)
        upgrade(engine)
        assert "loan_version" in _columns(engine)
    finally:
        engine.dispose()
