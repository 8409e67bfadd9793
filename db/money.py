"""Money as Decimal: quantising, repayment schedules and payment allocation (pure functions)."""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import TYPE_CHECKING

from babel.numbers import format_currency, get_currency_symbol

from db.models import Frequency, InterestMethod

if TYPE_CHECKING:
    from db.agency import Agency

ZERO = Decimal("0")
_PERIODS_PER_YEAR = {Frequency.DAILY: 365, Frequency.WEEKLY: 52, Frequency.MONTHLY: 12}
# An amount in an SMS: the ISO code and plain digits, the same in every locale and GSM-7
# safe (a ₹ or a no-break space would make the whole text UCS-2, 70 characters a part).
# The sign follows the code ("INR -5.00"), as the planner's SQL writes it (scheduler/jobs.py).
_PLAIN = "¤¤ 0.00;¤¤ -0.00"


def unit(minor_units: int = 2) -> Decimal:
    """The smallest amount of the currency, e.g. 0.01."""
    return Decimal(1).scaleb(-minor_units)


def q(amount: Decimal, minor_units: int = 2) -> Decimal:
    """Round to the currency's minor unit (half up, as a cashier would)."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money must be Decimal, not {type(amount).__name__}")
    return amount.quantize(unit(minor_units), rounding=ROUND_HALF_UP)


def split_evenly(total: Decimal, parts: int, minor_units: int = 2) -> list[Decimal]:
    """total in parts equal shares rounded down; the last share takes the remainder."""
    if parts < 1:
        raise ValueError("parts must be at least 1")
    share = (total / parts).quantize(unit(minor_units), rounding="ROUND_DOWN")
    return [share] * (parts - 1) + [total - share * (parts - 1)]


def add_period(start: date, frequency: Frequency, n: int) -> date:
    """The n-th due date after start; monthly dates keep the day, clamped to the month's end."""
    if frequency is Frequency.DAILY:
        return start + timedelta(days=n)
    if frequency is Frequency.WEEKLY:
        return start + timedelta(weeks=n)
    months = start.month - 1 + n
    year, month = start.year + months // 12, months % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class ScheduledInstallment:
    seq: int
    due_date: date
    principal: Decimal
    interest: Decimal

    @property
    def amount(self) -> Decimal:
        return self.principal + self.interest


def _flat_interest(principal: Decimal, rate: Decimal, count: int, frequency: Frequency) -> Decimal:
    years = Decimal(count) / _PERIODS_PER_YEAR[frequency]
    return principal * rate / 100 * years


def _reducing_split(
    principal: Decimal, rate: Decimal, count: int, frequency: Frequency, minor_units: int
) -> list[tuple[Decimal, Decimal]]:
    """(principal, interest) per period of an equal-instalment (EMI) loan."""
    r = rate / 100 / _PERIODS_PER_YEAR[frequency]
    with localcontext() as ctx:
        ctx.prec = 34
        growth = (1 + r) ** count
        # Rounded down: rounding up can repay the principal a period early and leave
        # a 0.00 last installment; the last one takes the remainder instead.
        exact = principal * r * growth / (growth - 1)
        emi = exact.quantize(unit(minor_units), rounding="ROUND_DOWN")
    rows, balance = [], principal
    for i in range(count):
        interest = q(balance * r, minor_units)
        part = balance if i == count - 1 else max(ZERO, min(emi - interest, balance))
        rows.append((part, interest))
        balance -= part
    return rows


def build_schedule(
    *,
    principal: Decimal,
    count: int,
    frequency: Frequency,
    first_due: date,
    method: InterestMethod = InterestMethod.NONE,
    annual_rate: Decimal = ZERO,
    minor_units: int = 2,
) -> list[ScheduledInstallment]:
    """Installments whose amounts add up exactly to principal plus interest."""
    if count < 1:
        raise ValueError("count must be at least 1")
    principal = q(principal, minor_units)
    if method is InterestMethod.REDUCING and annual_rate > 0:
        parts = _reducing_split(principal, annual_rate, count, frequency, minor_units)
    else:
        interest = ZERO
        if method is InterestMethod.FLAT:
            interest = q(_flat_interest(principal, annual_rate, count, frequency), minor_units)
        parts = list(
            zip(
                split_evenly(principal, count, minor_units),
                split_evenly(interest, count, minor_units),
                strict=True,
            )
        )
    return [
        ScheduledInstallment(i + 1, add_period(first_due, frequency, i), p, r)
        for i, (p, r) in enumerate(parts)
    ]


@dataclass(frozen=True)
class Due:
    """What one installment still owes: late fee first, then its amount."""

    fee: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Allocation:
    index: int
    fee: Decimal
    amount: Decimal


def allocate(payment: Decimal, dues: Sequence[Due]) -> list[Allocation]:
    """Spread payment over dues oldest first, each installment's fee before its amount.

    Raises ValueError when payment is not positive or exceeds the total owed.
    """
    owed = sum((d.fee + d.amount for d in dues), ZERO)
    if payment <= 0:
        raise ValueError("payment must be positive")
    if payment > owed:
        raise ValueError(f"payment {payment} exceeds the {owed} owed")
    result, left = [], payment
    for index, due in enumerate(dues):
        if left <= 0:
            break
        fee = min(left, due.fee)
        amount = min(left - fee, due.amount)
        if fee or amount:
            result.append(Allocation(index, fee, amount))
        left -= fee + amount
    return result


def format_money(amount: Decimal, agency: Agency, *, plain: bool = False) -> str:
    """An amount as people read it: ₹1,23,456.50 for INR in en_IN, $1,234.50 for USD in en_US.

    Rounded half up to the currency's minor units first (Babel would round half even).
    plain: for an SMS, e.g. INR 123456.50 (see _PLAIN).
    """
    value = q(amount, agency.minor_units)
    if plain:
        return format_currency(value, agency.currency, _PLAIN, locale="en", currency_digits=True)
    text = format_currency(value, agency.currency, locale=agency.locale, currency_digits=True)
    # Babel leaves out CLDR's currency spacing: a code written as letters (KWD, KES) gets
    # a space before the digits, as in KWD 1,234.500, and never a glued KWD1,234.500.
    symbol = get_currency_symbol(agency.currency, locale=agency.locale)
    if symbol[-1:].isalpha() and re.search(re.escape(symbol) + r"\d", text):
        text = text.replace(symbol, symbol + " ", 1)
    return text
