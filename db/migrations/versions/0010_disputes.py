"""disputes, hardship pauses and payment receipts: table loan_hold, payment.receipt_number

A loan_hold row is a dispute, a hardship pause (until a date) or a borrower's denial of a
payment (their NO to its receipt); reminders and late fees stop while a dispute or hardship
is open (issue 11). Payments get a receipt number the borrower is told; existing payments
get theirs too, R-<year of payment>-<id>, so every payment can be named the same way.

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-08 00:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import db.models

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _enum(name: str, values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


def upgrade() -> None:
    op.create_table(
        "loan_hold",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column(
            "loan_id", _BIG_ID, sa.ForeignKey("loan.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.Column("kind", _enum("ck_holdkind", ("dispute", "hardship", "payment")), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("opened_by_id", _BIG_ID, sa.ForeignKey("staff.id")),
        sa.Column("opened_at", db.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("until", sa.Date()),
        sa.Column("payment_id", _BIG_ID, sa.ForeignKey("payment.id", ondelete="RESTRICT")),
        sa.Column("resolved_at", db.models.UTCDateTime(timezone=True)),
        sa.Column("resolved_by_id", _BIG_ID, sa.ForeignKey("staff.id")),
        sa.Column("outcome", _enum("ck_holdoutcome", ("upheld", "rejected", "ended"))),
        sa.Column("resolution_note", sa.String(length=500)),
    )
    op.create_index("ix_loan_hold_loan_resolved", "loan_hold", ["loan_id", "resolved_at"])
    op.add_column("payment", sa.Column("receipt_number", sa.String(length=24)))
    bind = op.get_bind()
    year = (
        "strftime('%Y', paid_at)"
        if bind.dialect.name == "sqlite"
        else "to_char(paid_at AT TIME ZONE 'UTC', 'YYYY')"
    )
    bind.exec_driver_sql(
        f"UPDATE payment SET receipt_number = 'R-' || {year} || '-' || CAST(id AS VARCHAR(20)) "
        "WHERE amount > 0"
    )
    op.create_index("uq_payment_receipt_number", "payment", ["receipt_number"], unique=True)


def downgrade() -> None:
    kept = op.get_bind().exec_driver_sql("SELECT count(*) FROM loan_hold").scalar()
    if kept:
        # History is never deleted: disputes and pauses are part of the loan's record.
        raise RuntimeError(f"{kept} disputes or pauses are recorded; 0010 cannot be undone")
    op.drop_index("uq_payment_receipt_number", table_name="payment")
    op.drop_column("payment", "receipt_number")
    op.drop_index("ix_loan_hold_loan_resolved", table_name="loan_hold")
    op.drop_table("loan_hold")
