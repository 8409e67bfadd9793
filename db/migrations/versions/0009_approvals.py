"""approvals: approval_request (four eyes on money) and approval_card (the approvers' cards)

A change that needs a second person (issue 11: write-offs, payment reversals, long due-date
moves by agents, new loans) is stored as a request with its payload; its kind's handler
applies it when approved. Each approver's card in Telegram is a row, so the other cards can
be edited once someone decides. New tables only: nothing existing changes.

Revision ID: 0009
Revises: 0010
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_KINDS = ("new_loan", "write_off", "reversal", "due_date_move")
_STATES = ("pending", "approved", "rejected", "withdrawn")
_ROLES = ("admin", "manager", "agent")


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, db.models.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "approval_request",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", _enum(_KINDS, "ck_approvalkind"), nullable=False),
        sa.Column("state", _enum(_STATES, "ck_approvalstate"), nullable=False),
        sa.Column("loan_id", _ID, nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("approver_role", _enum(_ROLES, "ck_role"), nullable=False),
        sa.Column("requested_by_id", _ID, nullable=False),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("decided_by_id", _ID, nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        _when("created_at", nullable=False),
        _when("decided_at"),
        _when("reminded_at"),
        _when("outcome_told_at"),
        sa.ForeignKeyConstraint(["loan_id"], ["loan.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["requested_by_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["decided_by_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("approval_request", schema=None) as batch_op:
        batch_op.create_index("ix_approval_state_created", ["state", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_approval_request_loan_id"), ["loan_id"])
        batch_op.create_index(
            batch_op.f("ix_approval_request_requested_by_id"), ["requested_by_id"]
        )
    op.create_table(
        "approval_card",
        sa.Column("id", _ID, nullable=False),
        sa.Column("approval_id", _ID, nullable=False),
        sa.Column("staff_id", _ID, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        _when("sent_at"),
        _when("settled_at"),
        sa.ForeignKeyConstraint(["approval_id"], ["approval_request.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("approval_id", "staff_id"),
    )
    with op.batch_alter_table("approval_card", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approval_card_approval_id"), ["approval_id"])


def downgrade() -> None:
    kept = op.get_bind().exec_driver_sql("SELECT count(*) FROM approval_request").scalar()
    if kept:
        # Requests and their decisions are evidence (who asked, who approved): never dropped.
        raise RuntimeError(f"{kept} approval requests are kept; 0009 cannot be undone")
    op.drop_table("approval_card")
    op.drop_table("approval_request")
