"""Amounts are read by the agency's locale (Babel): its grouping only, never a guess."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_decimal
from hypothesis import given
from hypothesis import strategies as st

from db.agency import Agency
from db.config import SettingsError, load_settings
from db.services.errors import InvalidInput
from db.validation import parse_amount

LIMIT = Decimal("100000000")


@pytest.mark.parametrize(
    ("locale", "text", "value"),
    [
        ("en_IN", "1,50,000", "150000.00"),
        ("en_IN", "₹1,50,000.50", "150000.50"),
        ("en_IN", "15,00,000", "1500000.00"),
        ("en_IN", "1,500", "1500.00"),
        ("en_IN", "Rs. 1500.5", "1500.50"),
        ("en_US", "150,000", "150000.00"),
        ("en_US", "$1,500,000.25", "1500000.25"),
        ("de_DE", "150.000,50", "150000.50"),
        ("de_DE", "150,50", "150.50"),
        ("en_IN", "150000", "150000.00"),
    ],
)
def test_the_locales_own_grouping_is_accepted(locale, text, value):
    assert parse_amount(text, max_amount=LIMIT, agency=Agency(locale=locale)) == Decimal(value)


@pytest.mark.parametrize(
    ("locale", "text", "code"),
    [
        # The bug: 150,50 was read as 15050.00.
        ("en_IN", "150,50", "amount_grouping"),
        ("en_US", "150,50", "amount_grouping"),
        # Western grouping is not India's, and the other way round.
        ("en_IN", "150,000", "amount_grouping"),
        ("en_IN", "1,500,000", "amount_grouping"),
        ("en_US", "1,50,000", "amount_grouping"),
        # A decimal comma where the locale uses a point, and vice versa.
        ("en_IN", "1.500,50", "amount_grouping"),
        ("de_DE", "1500.50", "amount_grouping"),
        # A point that may be a thousands separator: three decimals are refused, not guessed.
        ("en_IN", "1.500", "amount_decimals"),
        ("de_DE", "150,000", "amount_decimals"),
        ("en_IN", "1e3", "amount_format"),
        ("en_IN", "١٢٣", "amount_format"),
        ("en_IN", ",500", "amount_format"),
        ("en_IN", "1 500", "amount_format"),
        ("en_IN", "0", "amount_not_positive"),
        ("en_IN", "2,00,00,00,000", "amount_too_large"),
    ],
)
def test_other_groupings_are_refused_with_the_reason(locale, text, code):
    with pytest.raises(InvalidInput) as err:
        parse_amount(text, max_amount=LIMIT, agency=Agency(locale=locale))
    assert err.value.code == code


def test_the_refusal_shows_how_the_locale_writes_amounts():
    with pytest.raises(InvalidInput) as err:
        parse_amount("150,50", max_amount=LIMIT, agency=Agency(locale="en_IN"))
    assert "1,50,000.50" in err.value.message and "150000.50" in err.value.message
    with pytest.raises(InvalidInput) as err:
        parse_amount("1,50,000", max_amount=LIMIT, agency=Agency(locale="de_DE"))
    assert "150.000,50" in err.value.message and "150000,50" in err.value.message


@pytest.mark.parametrize("locale", ["en_IN", "en_US", "de_DE"])
@given(value=st.decimals(min_value=Decimal("0.01"), max_value=LIMIT, places=2))
def test_what_the_locale_formats_reads_back(locale, value):
    written = format_decimal(value, format="#,##0.00", locale=locale)
    if locale == "en_IN":
        written = format_decimal(value, format="#,##,##0.00", locale=locale)
    assert parse_amount(written, max_amount=LIMIT, agency=Agency(locale=locale)) == value
    plain = format_decimal(value, locale=locale)  # the locale's default pattern
    assert parse_amount(plain, max_amount=LIMIT, agency=Agency(locale=locale)) == value


def test_the_locale_setting_is_checked():
    assert load_settings(agency_locale="en-US").agency_locale == "en_US"
    assert load_settings().agency_locale == "en_IN"
    with pytest.raises(SettingsError, match="AGENCY_LOCALE"):
        load_settings(agency_locale="xx_QQ_nope")
