"""Migration 0007 (message.failure_reason): old failures backfilled with the words of their day."""

from __future__ import annotations

from sqlalchemy import text

from db.migrate import drift, upgrade
from tests.test_migration_0006 import _downgrade, fresh  # noqa: F401 (fresh is a fixture)

# (status, error_code, error_message) -> the words the backfill must give (None: no reason)
ROWS = [
    ("failed", "21211", "The 'To' number is not valid", "invalid phone number"),
    ("undelivered", "30005", None, "unknown number (not in service)"),
    ("undelivered", "30001", None, "Twilio's queue was full"),
    ("failed", "39999", "odd", "Twilio error 39999"),
    ("failed", None, "timeout error: TimeoutError: ", "Twilio did not answer in time"),
    ("failed", None, "network error: ClientOSError: reset", "could not reach Twilio"),
    ("failed", None, "Unable to create record", "Twilio answered with an HTTP error"),
    ("failed", None, "worker stopped before the send finished", None),
    ("delivered", "30003", None, None),  # not a failure: left alone
    ("suppressed", None, "timeout error: from a rule", None),
]


def _insert(conn) -> None:
    for i, (status, code, message, _) in enumerate(ROWS, start=1):
        conn.execute(
            text(
                "INSERT INTO message (id, to_phone, body, kind, idempotency_key, status,"
                " error_code, error_message, attempts, send_after, created_at, updated_at)"
                " VALUES (:i, '+919800000001', 'x', 'reminder', :k, :s, :c, :m, 1, :t, :t, :t)"
            ),
            {"i": i, "k": f"m{i}", "s": status, "c": code, "m": message, "t": "2026-01-01"},
        )


def test_0007_backfills_failure_reasons_and_downgrades(fresh):  # noqa: F811
    upgrade(fresh, "0006")
    with fresh.begin() as conn:
        _insert(conn)
    upgrade(fresh, "0007")
    with fresh.connect() as conn:
        got = conn.execute(text("SELECT failure_reason FROM message ORDER BY id")).scalars().all()
    for (status, code, message, want), reason in zip(ROWS, got, strict=True):
        if want is None:
            assert reason is None, (status, code, message)
        else:
            assert reason is not None and reason.startswith(want), (code, message, reason)
    _downgrade(fresh, "0006")
    with fresh.connect() as conn:
        columns = conn.execute(text("SELECT * FROM message")).keys()
        kept = conn.execute(text("SELECT count(*) FROM message")).scalar()
    assert "failure_reason" not in columns and kept == len(ROWS)
    upgrade(fresh, "head")
    assert drift(fresh) == []
