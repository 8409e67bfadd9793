"""API keys and idempotency keys for the JSON API (issue 13)

api_key: a key acts as its staff member, limited by its scopes; only the token's sha256 is
kept. idempotency_key: the first answer to a write sent with an Idempotency-Key header.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", _ID, nullable=False),
        sa.Column("staff_id", _ID, nullable=False),
        sa.Column("created_by_id", _ID, nullable=True),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("created_at", db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by_id", _ID, nullable=True),
        sa.Column("window_started_at", db.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("window_calls", sa.Integer(), nullable=False),
        sa.Column("reads_day", sa.Date(), nullable=True),
        sa.Column("reads_on_day", sa.Integer(), nullable=False),
        sa.Column("reads_total", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["created_by_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["revoked_by_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_key_staff_id"), ["staff_id"], unique=False)
    op.create_table(
        "idempotency_key",
        sa.Column("id", _ID, nullable=False),
        sa.Column("api_key_id", _ID, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.JSON(), nullable=False),
        sa.Column("created_at", db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_key.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("api_key_id", "key", name="uq_idempotency_key_api_key"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_key")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_staff_id"))
    op.drop_table("api_key")
