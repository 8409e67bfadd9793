"""What a provider's failure means for a number, in our words (no provider codes here).

The worker sorts the provider's codes into these classes at its boundary
(scheduler/twilio_codes.py) and hands the outbox a Failure; the outbox and
db/services/sms/suppressions.py act on the class alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from db.config import Settings


class FailureClass(StrEnum):
    PERMANENT = "permanent"  # the number is wrong, a landline or blocked: suppress it now
    TEMPORARY = "temporary"  # the handset is unreachable for now: count, suppress on a streak
    OPT_OUT = "opt_out"  # the recipient unsubscribed (STOP)
    MESSAGE = "message"  # this message or our account was refused: says nothing of the number


@dataclass(frozen=True)
class Failure:
    """One failed send or delivery report, as the outbox acts on it."""

    kind: FailureClass
    code: str | None
    words: str  # what the suppression's reason says (e.g. "landline or unreachable carrier")


@dataclass(frozen=True)
class StreakRule:
    """Suppress after `limit` temporary failures in a row within `days` (SMS_UNREACHABLE_*)."""

    limit: int = 5
    days: int = 7

    @classmethod
    def of(cls, settings: Settings) -> StreakRule:
        return cls(settings.sms_unreachable_limit, settings.sms_unreachable_days)
