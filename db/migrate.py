"""Run alembic from code (the CLI and the tests), and compare models with migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from db.models import Base

_ROOT = Path(__file__).resolve().parent


def alembic_config(url: str | None = None) -> Config:
    """An alembic Config that finds db/migrations wherever the package is installed."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_ROOT / "migrations"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind engine up to revision."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def drift(engine: Engine) -> list[Any]:
    """Differences between the models and the migrated database (empty when in step)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        # alembic types the differences as Any: tuples of several shapes.
        diffs: list[Any] = compare_metadata(ctx, Base.metadata)
        return diffs
