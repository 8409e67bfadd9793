"""Money as Decimal: quantising, repayment schedules and payment allocation (pure functions)."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

from db.models import Frequency, InterestMethod

ZERO = Decimal("0")
_PERIODS_PER_YEAR = {Frequency.DAILY: 365, Frequency.WEEKLY: 52, Frequency.MONTHLY: 12}
_SYMBOLS = {"INR": "₹", "USD": "$", "EUR": "€", "GBP": "£", "NGN": "₦", "KES": "KSh ", "PHP": "₱"}


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


def _group(digits: str, indian: bool) -> str:
    if not indian or len(digits) <= 3:
        return f"{int(digits):,}"
    head, tail = digits[:-3], digits[-3:]
    pairs: list[str] = []
    while len(head) > 2:
        pairs.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([head, *pairs, tail])


def format_money(amount: Decimal, currency: str = "INR", minor_units: int = 2) -> str:
    """e.g. ₹1,23,456.50 for INR (lakh grouping), $1,234.50 for USD."""
    value = q(amount, minor_units)
    sign = "-" if value < 0 else ""
    whole, _, frac = f"{abs(value):f}".partition(".")
    text = _group(whole, currency == "INR") + (f".{frac}" if frac else "")
    symbol = _SYMBOLS.get(currency, f"{currency} ")
    return f"{sign}{symbol}{text}"
