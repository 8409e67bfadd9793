"""Parsing what people type: amounts, phones, names, dates, loan numbers. Pure functions.

Every refusal is an InvalidInput with a short sentence that says what was wrong.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Literal, overload

import phonenumbers
from babel.numbers import (
    NumberFormatError,
    format_decimal,
    get_decimal_symbol,
    get_group_symbol,
    parse_decimal,
)

from db import agency as agencies
from db.agency import Agency
from db.money import format_money
from db.services.errors import InvalidInput

# A currency sign or code in front of an amount is allowed and ignored.
_CURRENCY_PREFIX = re.compile(r"^(?:rs\.?|inr|usd|eur|₹|\$|€|£)\s*", re.I)
_LOAN_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,31}$")
_RELATIVE_DAYS = re.compile(r"^\+(\d{1,3})d?$")
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y")

MAX_TEXT = 4000
DEFAULT_LOCALE = "en_IN"


def above_limit(max_amount: Decimal, agency: Agency) -> InvalidInput:
    """The refusal of an amount above max_amount (MAX_AMOUNT), the limit in agency money."""
    return InvalidInput(
        f"That amount is above the limit of {format_money(max_amount, agency)}.",
        code="amount_too_large",
    )


def parse_amount(text: str, *, max_amount: Decimal, agency: Agency = agencies.DEFAULT) -> Decimal:
    """A positive amount written as the agency's locale writes numbers, at most its
    currency's minor units of decimals.

    Grouping must be the locale's own (1,50,000 in en_IN, 150,000 in en_US): anything
    else (150,50) is refused with the reason, never guessed.
    """
    raw = (text or "").strip()
    if not raw:
        raise InvalidInput("Please send an amount, e.g. 1500 or 1500.50.", code="amount_empty")
    if len(raw) > 32:
        raise InvalidInput("That amount is too long.", code="amount_format")
    if raw.startswith("-"):
        raise InvalidInput("The amount must be more than zero.", code="amount_not_positive")
    minor_units = agency.minor_units
    value = _locale_number(_CURRENCY_PREFIX.sub("", raw, count=1), agency.locale)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "digits only: never NaN or infinite"
    if -exponent > minor_units:
        raise InvalidInput(
            f"Use at most {minor_units} decimal places.", code="amount_decimals", places=minor_units
        )
    if value <= 0:
        raise InvalidInput("The amount must be more than zero.", code="amount_not_positive")
    if value > max_amount:
        raise above_limit(max_amount, agency)
    return value.quantize(Decimal(1).scaleb(-minor_units))


def _locale_number(body: str, locale: str) -> Decimal:
    """body read strictly by Babel in locale (InvalidInput saying how to write it)."""
    group, point = get_group_symbol(locale), get_decimal_symbol(locale)
    spaces = {" ", "\u00a0", "\u202f"} if group.isspace() else set()
    # ASCII digits only: Decimal also accepts other scripts' digits ("١٢٣") and "1e3".
    if (
        not body
        or not body[0].isdigit()
        or any(not ("0" <= ch <= "9") and ch not in {group, point, *spaces} for ch in body)
    ):
        raise InvalidInput(
            "That is not an amount. Use digits only, e.g. 1500 or "
            f"{format_decimal(Decimal('1500.5'), locale=locale)}0.",
            code="amount_format",
        )
    try:
        return Decimal(parse_decimal(body, locale=locale, strict=True))
    except (NumberFormatError, InvalidOperation):
        example = format_decimal(Decimal("150000.5"), locale=locale) + "0"
        raise InvalidInput(
            f"{body} is not clear as an amount: here digits are grouped as in {example} "
            f"(\u201c{group}\u201d between groups, \u201c{point}\u201d before the paise/cents). "
            f"Send it again, or send digits only, e.g. 150000{point}50.",
            code="amount_grouping",
            example=example,
        ) from None


def parse_phone(text: str, *, region: str) -> str:
    """A valid phone number in E.164, read in the agency's default region."""
    raw = (text or "").strip()
    if not raw or len(raw) > 32 or not re.fullmatch(r"[0-9+()\-.\s]+", raw):
        raise InvalidInput(
            "That is not a phone number. Send digits, e.g. 98765 43210.", code="phone_format"
        )
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise InvalidInput("That is not a phone number.", code="phone_format") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(
            f"{raw} is not a valid phone number in {region}.", code="phone_invalid", region=region
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@overload
def clean_text(
    text: str | None, *, field: str, max_len: int, required: Literal[True] = True
) -> str: ...
@overload
def clean_text(text: str | None, *, field: str, max_len: int, required: bool) -> str | None: ...
def clean_text(text: str | None, *, field: str, max_len: int, required: bool = True) -> str | None:
    """Trimmed, single-spaced text without control characters, at most max_len long."""
    raw = " ".join((text or "").split())
    if not raw:
        if required:
            raise InvalidInput(f"The {field} cannot be empty.", code="text_empty", field=field)
        return None
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in raw):
        raise InvalidInput(
            f"The {field} contains characters that are not allowed.",
            code="text_control",
            field=field,
        )
    if len(raw) > max_len:
        raise InvalidInput(
            f"The {field} is too long (at most {max_len} characters).",
            code="text_long",
            field=field,
            max_len=max_len,
        )
    return raw


def clean_name(text: str | None) -> str:
    """A person's name: 2 to 120 characters, with at least one letter."""
    name = clean_text(text, field="name", max_len=120)
    assert name is not None
    if len(name) < 2 or not any(ch.isalpha() for ch in name):
        raise InvalidInput("A name needs at least two characters and a letter.", code="name_short")
    return name


def name_key(name: str) -> str:
    """The form of a name that case-insensitive prefix search compares."""
    return unicodedata.normalize("NFKC", name).casefold()


def parse_date(text: str, *, today: date, future: bool = False, max_days: int = 3660) -> date:
    """A date as 2026-12-01, 01/12/2026, today, tomorrow or +3 (days from today)."""
    raw = (text or "").strip().lower()
    value = _relative_date(raw, today) or _absolute_date(raw)
    if value is None:
        raise InvalidInput(
            "That is not a date. Use DD/MM/YYYY, YYYY-MM-DD, today, tomorrow or +N days.",
            code="date_format",
        )
    if future and value < today:
        raise InvalidInput("That date has passed; give today or a later date.", code="date_past")
    if abs((value - today).days) > max_days:
        raise InvalidInput("That date is too far away.", code="date_far")
    return value


def _relative_date(raw: str, today: date) -> date | None:
    if raw == "today":
        return today
    if raw == "tomorrow":
        return today + timedelta(days=1)
    match = _RELATIVE_DAYS.match(raw)
    return today + timedelta(days=int(match.group(1))) if match else None


def _absolute_date(raw: str) -> date | None:
    if not raw.isascii():
        return None
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    return None


def parse_loan_number(text: str) -> str:
    """A loan number: 3 to 32 letters, digits or dashes (stored upper case)."""
    raw = (text or "").strip().upper()
    if not raw.isascii() or not _LOAN_NUMBER.match(raw):
        raise InvalidInput(
            "A loan number is 3 to 32 letters, digits or dashes, e.g. LN-10234.",
            code="loan_number_format",
        )
    return raw


def parse_count(text: str, *, field: str, low: int, high: int) -> int:
    """A whole number between low and high."""
    raw = (text or "").strip()
    if not raw.isascii() or not raw.isdigit():
        raise InvalidInput(f"The {field} must be a whole number.", code="int_format", field=field)
    value = int(raw)
    if not low <= value <= high:
        raise InvalidInput(
            f"The {field} must be between {low} and {high}.", code="int_range", field=field
        )
    return value


def parse_rate(text: str) -> Decimal:
    """An annual interest rate in percent, 0 to 100, at most 4 decimals."""
    raw = (text or "").strip().rstrip("%").strip()
    if not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,4})?", raw):
        raise InvalidInput("Send the yearly rate in percent, e.g. 18 or 12.5.", code="rate_format")
    value = Decimal(raw)
    if value > 100:
        raise InvalidInput("The yearly rate must be at most 100%.", code="rate_range")
    return value
