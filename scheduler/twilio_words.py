"""Twilio error codes (and the worker's own failure kinds) in plain words for an agency.

The worker's boundary: it writes these words into message.failure_reason when it records a
failure, so db/ reports failures in our words and never reads a provider's code. Migration
0007 holds a frozen copy of this table for the rows recorded before the column existed.
"""

from __future__ import annotations

from enum import StrEnum


class LocalCode(StrEnum):
    """Stand-ins for failures the provider gave no code for (see classify)."""

    TIMEOUT = "timeout"
    NETWORK = "network"
    HTTP = "http"
    NONE = "none"


# The worker records transient errors with these message prefixes and no code
# (scheduler/sms.py map_error; "Unable to ..." is the twilio client's non-JSON error).
PREFIXES: dict[LocalCode, str] = {
    LocalCode.TIMEOUT: "timeout error",
    LocalCode.NETWORK: "network error",
    LocalCode.HTTP: "Unable to ",
}

WORDS: dict[str, str] = {
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
    LocalCode.TIMEOUT: "Twilio did not answer in time (retried, then gave up)",
    LocalCode.NETWORK: "could not reach Twilio (retried, then gave up)",
    LocalCode.HTTP: "Twilio answered with an HTTP error and no code",
    LocalCode.NONE: "no error code recorded",
}


def describe(code: str | None) -> str:
    """Plain words for a code; an unknown Twilio code is named as such."""
    if not code:
        return WORDS[LocalCode.NONE]
    return WORDS.get(code) or f"Twilio error {code}"


def classify(code: str | None, message: str | None) -> str:
    """The key a failure is described under: the provider's code, else a LocalCode from the
    text (a transient error recorded without a code, see PREFIXES)."""
    if code:
        return code
    for local, prefix in PREFIXES.items():
        if message and message.startswith(prefix):
            return local.value
    return LocalCode.NONE.value


def words(code: str | None, message: str | None = None) -> str:
    """What the worker records as a failure's reason (message.failure_reason)."""
    return describe(classify(code, message))
