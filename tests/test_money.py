"""Property tests for db/money.py (schedules, allocation, dates, formatting) and parse_amount."""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from babel.numbers import get_currency_symbol, parse_decimal
from hypothesis import given
from hypothesis import strategies as st

from db.agency import Agency
from db.models import Frequency, InterestMethod
from db.money import Due, add_period, allocate, build_schedule, format_money
from db.services.errors import InvalidInput
from db.validation import parse_amount

CENT = Decimal("0.01")
ZERO = Decimal("0")

amounts = st.decimals(min_value=CENT, max_value=Decimal("100000000"), places=2)
rates = st.decimals(min_value=ZERO, max_value=Decimal("100"), places=4)
dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))


def two_places(value: Decimal) -> bool:
    return value == value.quantize(CENT)


@given(
    principal=amounts,
    count=st.integers(min_value=1, max_value=360),
    frequency=st.sampled_from(Frequency),
    method=st.sampled_from(InterestMethod),
    rate=rates,
    first_due=dates,
)
def test_schedule_adds_up_exactly(principal, count, frequency, method, rate, first_due):
    rows = build_schedule(
        principal=principal,
        count=count,
        frequency=frequency,
        first_due=first_due,
        method=method,
        annual_rate=rate,
    )
    interest = sum((r.interest for r in rows), ZERO)
    assert len(rows) == count
    assert sum((r.principal for r in rows), ZERO) == principal
    assert sum((r.amount for r in rows), ZERO) == principal + interest
    for r in rows:
        assert r.principal >= 0 and r.interest >= 0
        assert two_places(r.principal) and two_places(r.interest) and two_places(r.amount)
    assert [r.seq for r in rows] == list(range(1, count + 1))
    assert all(a.due_date < b.due_date for a, b in pairwise(rows))
    assert rows[0].due_date == first_due
    if method is InterestMethod.NONE or rate == 0:
        assert interest == 0


@given(principal=amounts, count=st.integers(1, 120), rate=rates)
def test_flat_interest_is_the_rounded_simple_interest(principal, count, rate):
    rows = build_schedule(
        principal=principal,
        count=count,
        frequency=Frequency.MONTHLY,
        first_due=date(2030, 1, 31),
        method=InterestMethod.FLAT,
        annual_rate=rate,
    )
    expected = (principal * rate / 100 * count / 12).quantize(CENT, rounding="ROUND_HALF_UP")
    assert sum((r.interest for r in rows), ZERO) == expected


@given(
    principal=st.decimals(min_value=Decimal("1000"), max_value=Decimal("100000000"), places=2),
    count=st.integers(2, 360),
    rate=st.decimals(min_value=Decimal("0.5"), max_value=Decimal("100"), places=2),
)
def test_reducing_installments_are_level_except_the_last(principal, count, rate):
    rows = build_schedule(
        principal=principal,
        count=count,
        frequency=Frequency.MONTHLY,
        first_due=date(2030, 1, 1),
        method=InterestMethod.REDUCING,
        annual_rate=rate,
    )
    paying = [r for r in rows if r.amount > 0]
    assert len({r.amount for r in paying[:-1]}) == 1  # level EMI; the last one takes the rest
    assert all(a.interest >= b.interest for a, b in pairwise(rows))


@pytest.mark.parametrize(
    ("principal", "count", "rate"), [("1000", 173, "45.67"), ("1000", 360, "12")]
)
def test_reducing_schedule_has_no_empty_installment(principal, count, rate):
    rows = build_schedule(
        principal=Decimal(principal),
        count=count,
        frequency=Frequency.MONTHLY,
        first_due=date(2030, 1, 1),
        method=InterestMethod.REDUCING,
        annual_rate=Decimal(rate),
    )
    assert all(r.amount > 0 for r in rows)


@given(
    principal=st.decimals(min_value=CENT, max_value=Decimal("1"), places=2),
    count=st.integers(2, 360),
    method=st.sampled_from(InterestMethod),
)
def test_tiny_principals_can_make_zero_installments(principal, count, method):
    # Known edge: fewer minor units than installments leaves some at 0.00 (add_loan refuses).
    rows = build_schedule(
        principal=principal,
        count=count,
        frequency=Frequency.DAILY,
        first_due=date(2030, 1, 1),
        method=method,
        annual_rate=Decimal("1"),
    )
    assert sum((r.amount for r in rows), ZERO) >= principal
    assert all(r.amount >= 0 for r in rows)


dues_lists = st.lists(
    st.builds(
        Due,
        fee=st.decimals(min_value=ZERO, max_value=Decimal("500"), places=2),
        amount=st.decimals(min_value=ZERO, max_value=Decimal("100000"), places=2),
    ),
    min_size=1,
    max_size=30,
).filter(lambda dues: sum((d.fee + d.amount for d in dues), ZERO) > 0)


@given(dues=dues_lists, data=st.data())
def test_allocate_conserves_every_minor_unit(dues, data):
    owed = sum((d.fee + d.amount for d in dues), ZERO)
    payment = data.draw(st.decimals(min_value=CENT, max_value=owed, places=2))
    allocations = allocate(payment, dues)
    assert sum((a.fee + a.amount for a in allocations), ZERO) == payment
    assert [a.index for a in allocations] == sorted({a.index for a in allocations})
    for a in allocations:
        due = dues[a.index]
        assert 0 <= a.fee <= due.fee and 0 <= a.amount <= due.amount
        assert two_places(a.fee) and two_places(a.amount)
        if a.amount > 0:  # the fee goes first
            assert a.fee == due.fee
    paid = {a.index: a.fee + a.amount for a in allocations}
    last = max(paid)
    for i in range(last):  # oldest first: everything before the last touched one is settled
        assert paid.get(i, ZERO) == dues[i].fee + dues[i].amount
    balance = owed - payment
    assert balance >= 0
    assert all(dues[i].fee + dues[i].amount - paid.get(i, ZERO) >= 0 for i in range(len(dues)))


@given(dues=dues_lists, extra=st.decimals(min_value=CENT, max_value=Decimal("1000"), places=2))
def test_allocate_refuses_more_than_owed(dues, extra):
    owed = sum((d.fee + d.amount for d in dues), ZERO)
    with pytest.raises(ValueError):
        allocate(owed + extra, dues)


@pytest.mark.parametrize("payment", [ZERO, Decimal("-1"), Decimal("-0.01")])
def test_allocate_refuses_non_positive(payment):
    with pytest.raises(ValueError):
        allocate(payment, [Due(ZERO, Decimal("10"))])


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2024, 1, 31), 2, date(2024, 3, 31)),
        (date(2024, 3, 31), 1, date(2024, 4, 30)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2024, 11, 30), 3, date(2025, 2, 28)),
    ],
)
def test_add_period_monthly_clamps_to_month_end(start, n, expected):
    assert add_period(start, Frequency.MONTHLY, n) == expected


@given(start=dates, n=st.integers(0, 400))
def test_add_period_properties(start, n):
    monthly = add_period(start, Frequency.MONTHLY, n)
    months = (monthly.year - start.year) * 12 + monthly.month - start.month
    assert months == n
    assert monthly.day == min(start.day, calendar.monthrange(monthly.year, monthly.month)[1])
    assert add_period(start, Frequency.DAILY, n) == start + timedelta(days=n)
    assert add_period(start, Frequency.WEEKLY, n) == start + timedelta(weeks=n)


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        ("123456.5", "INR", "en_IN", "₹1,23,456.50"),
        ("10000000", "INR", "en_IN", "₹1,00,00,000.00"),
        ("999", "INR", "en_IN", "₹999.00"),
        ("1000", "INR", "en_IN", "₹1,000.00"),
        ("0", "INR", "en_IN", "₹0.00"),
        ("0.005", "INR", "en_IN", "₹0.01"),  # half up, where Babel alone rounds half even
        ("-1500", "INR", "en_IN", "-₹1,500.00"),
        ("1234567.891", "USD", "en_US", "$1,234,567.89"),
        ("1234.5", "EUR", "en_US", "€1,234.50"),
        ("1234.5", "XYZ", "en_US", "XYZ 1,234.50"),
        ("1234.5", "KWD", "en_IN", "KWD 1,234.500"),
        ("1234.5", "INR", "de_DE", "1.234,50\xa0₹"),
    ],
)
def test_format_money_examples(amount, currency, locale, expected):
    agency = Agency(currency=currency, locale=locale)
    assert format_money(Decimal(amount), agency) == expected


def test_format_money_without_minor_units():
    assert format_money(Decimal("1234.5"), Agency(currency="JPY", locale="en_IN")) == "JP¥1,235"
    assert format_money(Decimal("1234.5"), Agency(currency="JPY"), plain=True) == "JPY 1235"


def test_the_agency_takes_its_minor_units_from_the_currency():
    assert [Agency(currency=c).minor_units for c in ("INR", "JPY", "KWD")] == [2, 0, 3]


@given(
    units=st.integers(min_value=-(10**14), max_value=10**14),
    currency=st.sampled_from(["INR", "USD", "JPY", "KWD", "EUR"]),
    locale=st.sampled_from(["en_IN", "en_US", "de_DE", "fr_FR", "hi_IN"]),
)
def test_format_money_round_trips_every_minor_unit(units, currency, locale):
    """Whole minor units in, the same minor units back: digits only, never a float."""
    agency = Agency(currency=currency, locale=locale)
    amount = Decimal(units).scaleb(-agency.minor_units)
    plain = format_money(amount, agency, plain=True)
    code, number = plain.split(" ")
    assert code == currency and Decimal(number) == amount
    shown = format_money(amount, agency)
    read = parse_decimal(
        shown.replace(get_currency_symbol(currency, locale=locale), "").strip("\xa0 -"),
        locale=locale,
        strict=True,
    )
    assert (-read if units < 0 else read).scaleb(agency.minor_units) == units


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("-5", "amount_not_positive"),
        ("0", "amount_not_positive"),
        ("1e9", "amount_format"),
        ("12.345", "amount_decimals"),
        ("abc", "amount_format"),
        ("١٢٣", "amount_format"),
        ("1e3", "amount_format"),
        (" ", "amount_empty"),
        ("1.2.3", "amount_grouping"),
        ("200000000", "amount_too_large"),
    ],
)
def test_parse_amount_refusals(text, code):
    with pytest.raises(InvalidInput) as err:
        parse_amount(text, max_amount=Decimal("100000000"))
    assert err.value.code == code


@given(value=amounts)
def test_parse_amount_round_trips(value):
    assert parse_amount(f"{value:f}", max_amount=Decimal("100000000")) == value
    # Python's "," groups in threes: the en_US way (tests/test_amounts.py covers en_IN).
    assert (
        parse_amount(
            f"${value:,.2f}", max_amount=Decimal("100000000"), agency=Agency(locale="en_US")
        )
        == value
    )
