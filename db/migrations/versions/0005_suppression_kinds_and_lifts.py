"""suppression kinds, their lift history, unreachable streaks, keyword reply state

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-07 19:55:00

Data: a suppression made by a single 30003 (unreachable handset, usually temporary) is
lifted here, with a suppression_lift row (via "migration") saying so; a number that keeps
failing is suppressed again by the new streak rule. Every other existing suppression is
kept as "permanent" (an admin can lift it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_KINDS = ("permanent", "unreachable", "opt_out")


def _kind() -> sa.Enum:
    return sa.Enum(*_KINDS, name="ck_suppressionkind", native_enum=False,
                   create_constraint=True, length=24)


def upgrade() -> None:
    with op.batch_alter_table("suppression", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", _kind(), nullable=False,
                                      server_default="permanent"))
    op.create_table(
        "suppression_lift",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("kind", _kind(), nullable=False),
        sa.Column("suppressed_reason", sa.String(length=120), nullable=False),
        sa.Column("error_code", sa.String(length=16), nullable=True),
        sa.Column("suppressed_at", db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("lifted_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("lifted_at", db.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lifted_by_id"], ["staff.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("suppression_lift", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_suppression_lift_phone"), ["phone"], unique=False)
    op.create_table(
        "unreachable_streak",
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_code", sa.String(length=16), nullable=True),
        sa.Column("first_at", db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", db.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("phone"),
    )
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply_state", sa.String(length=16), nullable=True))
    _lift_single_30003()


def _lift_single_30003() -> None:
    """30003 used to suppress for ever: lift those, keeping the history."""
    op.execute(
        "INSERT INTO suppression_lift (phone, kind, suppressed_reason, error_code, "
        "suppressed_at, via, lifted_by_id, reason, lifted_at) "
        "SELECT phone, 'unreachable', reason, error_code, created_at, 'migration', NULL, "
        "'30003 is temporary: one failure no longer suppresses', CURRENT_TIMESTAMP "
        "FROM suppression WHERE error_code = '30003'"
    )
    op.execute("DELETE FROM suppression WHERE error_code = '30003'")


def downgrade() -> None:
    with op.batch_alter_table("inbound_message", schema=None) as batch_op:
        batch_op.drop_column("reply_state")
    op.drop_table("unreachable_streak")
    with op.batch_alter_table("suppression_lift", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suppression_lift_phone"))
    op.drop_table("suppression_lift")
    with op.batch_alter_table("suppression", schema=None) as batch_op:
        # The CHECK goes first: SQLite's table copy would otherwise keep it, naming no column.
        batch_op.drop_constraint("ck_suppressionkind", type_="check")
        batch_op.drop_column("kind")
