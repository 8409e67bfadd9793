"""Migration 0008 (the finance role): the CHECK admits finance, and is undone only without it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db.migrate import drift, upgrade
from tests.test_migration_0006 import _downgrade, fresh  # noqa: F401 (the fixture)

_STAFF = (
    "INSERT INTO staff (id, telegram_user_id, name, role, state, failed_logins, created_at,"
    " updated_at) VALUES (:id, :id, 'F', :role, 'active', 0, :t, :t)"
)


def _add(engine, staff_id: int, role: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(_STAFF), {"id": staff_id, "role": role, "t": "2026-01-01"})


def test_0008_admits_finance_and_downgrades_only_without_it(fresh) -> None:  # noqa: F811
    upgrade(fresh, "0007")
    with pytest.raises(IntegrityError):
        _add(fresh, 1, "finance")  # the old CHECK refuses it
    upgrade(fresh, "head")
    assert drift(fresh) == []
    _add(fresh, 2, "finance")
    with pytest.raises(IntegrityError):
        _add(fresh, 3, "auditor")  # still a CHECK, not a free string
    with pytest.raises(RuntimeError, match="finance role"):
        _downgrade(fresh, "0007")
    with fresh.begin() as conn:
        conn.execute(text("UPDATE staff SET role = 'admin' WHERE id = 2"))
    _downgrade(fresh, "0007")
    with pytest.raises(IntegrityError):
        _add(fresh, 4, "finance")
    upgrade(fresh, "head")
    assert drift(fresh) == []
