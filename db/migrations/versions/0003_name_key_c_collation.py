"""name search: name_key in the C collation (PostgreSQL) and one index for prefix + order

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("borrower", schema=None) as batch_op:
        batch_op.drop_index("ix_borrower_name_key")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "borrower", "name_key",
            type_=sa.String(120, collation="C"), existing_type=sa.String(120),
            existing_nullable=False,
        )
    with op.batch_alter_table("borrower", schema=None) as batch_op:
        batch_op.create_index("ix_borrower_name_key_id", ["name_key", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("borrower", schema=None) as batch_op:
        batch_op.drop_index("ix_borrower_name_key_id")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "borrower", "name_key",
            type_=sa.String(120), existing_type=sa.String(120, collation="C"),
            existing_nullable=False,
        )
        op.create_index(
            "ix_borrower_name_key", "borrower", ["name_key"],
            postgresql_ops={"name_key": "text_pattern_ops"},
        )
    else:
        with op.batch_alter_table("borrower", schema=None) as batch_op:
            batch_op.create_index("ix_borrower_name_key", ["name_key"], unique=False)
