"""The agency as the product speaks for it: name, phone, currency, time zone, locale.

One value built from the settings (agency_of) and handed to services, the bot and the
worker as `agency=`, instead of its parts travelling as separate keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision

from db.config import Settings


def minor_units_of(currency: str) -> int:
    """The currency's decimal places (ISO 4217 via Babel's CLDR data): INR 2, JPY 0, KWD 3."""
    return get_currency_precision(currency)


@dataclass(frozen=True)
class Agency:
    """Who texts the borrowers and how its amounts, dates and numbers are written.

    The defaults are the settings' defaults; minor_units follows the currency.
    """

    name: str = "Vasooli"
    phone: str | None = None
    currency: str = "INR"
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Kolkata"))
    locale: str = "en_IN"  # how staff read and write numbers (AGENCY_LOCALE)
    region: str = "IN"  # phone numbers without a country code (DEFAULT_PHONE_REGION)
    minor_units: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "minor_units", minor_units_of(self.currency))

    @property
    def signature(self) -> str:
        """How an SMS is signed: the name, and the phone when set, so a borrower can call."""
        return " ".join(filter(None, (self.name, self.phone)))


def agency_of(settings: Settings) -> Agency:
    """The Agency the settings describe."""
    return Agency(
        name=settings.agency_name,
        phone=settings.agency_phone,
        currency=settings.currency,
        zone=settings.tz,
        locale=settings.agency_locale,
        region=settings.default_phone_region,
    )


# The settings' defaults: what a service uses when its caller names no agency (tests, tools).
DEFAULT = Agency()
