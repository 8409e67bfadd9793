"""message.failure_reason: the worker's plain words for a failure, backfilled

db/ no longer reads a provider's error codes (issue 10): the worker writes what a failure
means, in our words, when it records it, and delivery reports group by those words
(message.error_code stays as the provider's reference, shown as it is).

Rows failed before this column existed are backfilled from error_code / error_message with
a CASE that is a frozen copy of the worker's table on the day of this migration
(scheduler/twilio_words.py WORDS and PREFIXES). A migration is history: later changes to
the worker's words must not change what this step did, so the copy is deliberate.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Snapshot of scheduler/twilio_words.py WORDS (provider codes) on 2026-12-08.
_WORDS = {
    "20429": "too many requests to Twilio (retried, then gave up)",
    "20500": "Twilio had an internal error (retried, then gave up)",
    "20503": "Twilio was unavailable (retried, then gave up)",
    "21211": "invalid phone number",
    "21408": "SMS to this country is not enabled on the Twilio account",
    "21610": "the borrower replied STOP (unsubscribed)",
    "21612": "Twilio cannot route SMS to this number",
    "21614": "not a mobile number",
    "21617": "the message is longer than 1600 characters",
    "30001": "Twilio's queue was full",
    "30002": "the Twilio account is suspended",
    "30003": "unreachable handset (switched off or out of coverage)",
    "30004": "blocked by the recipient or their carrier",
    "30005": "unknown number (not in service)",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier as spam",
    "30008": "unknown error at the carrier",
    "30010": "the message price exceeded the account's limit",
}
# Snapshot of PREFIXES with their words: transient errors the worker recorded with no code.
_PREFIXES = [
    ("timeout error", "Twilio did not answer in time (retried, then gave up)"),
    ("network error", "could not reach Twilio (retried, then gave up)"),
    ("Unable to ", "Twilio answered with an HTTP error and no code"),
]
# Unknown codes were described as "Twilio error <code>"; no code and no known prefix: no
# reason was recorded, so the column stays NULL ("no reason recorded" in the report).
_UNKNOWN_CODE = "Twilio error "


def _backfill() -> tuple[str, dict[str, str]]:
    """The UPDATE and its parameters (words are bound: some hold quotes)."""
    whens, params = [], {}
    for i, (code, words) in enumerate(_WORDS.items()):
        whens.append(f"WHEN error_code = :c{i} THEN :w{i}")
        params |= {f"c{i}": code, f"w{i}": words}
    whens.append("WHEN error_code IS NOT NULL THEN :unknown || error_code")
    params["unknown"] = _UNKNOWN_CODE
    for i, (prefix, words) in enumerate(_PREFIXES):
        whens.append(f"WHEN error_message LIKE :p{i} THEN :pw{i}")
        params |= {f"p{i}": prefix + "%", f"pw{i}": words}
    sql = (
        "UPDATE message SET failure_reason = CASE " + " ".join(whens) + " ELSE NULL END "
        "WHERE status IN ('failed', 'undelivered')"
    )
    return sql, params


def upgrade() -> None:
    op.add_column("message", sa.Column("failure_reason", sa.String(length=200), nullable=True))
    sql, params = _backfill()
    op.get_bind().execute(sa.text(sql), params)


def downgrade() -> None:
    # The words are derived from error_code / error_message, which stay: nothing is lost.
    op.get_bind().exec_driver_sql("ALTER TABLE message DROP COLUMN failure_reason")
