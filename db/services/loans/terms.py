"""Loan terms shared by adding and editing loans: limits, the checked schedule, who may hold one."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from db import agency as agencies
from db.agency import Agency
from db.models import InterestMethod, Role, Staff, StaffState
from db.money import ScheduledInstallment, build_schedule, format_money, q
from db.services.errors import InvalidInput
from db.validation import above_limit

MAX_INSTALLMENTS = 360
MAX_DAYS_AHEAD = 3660
DEFAULT_MAX_AMOUNT = Decimal("100000000")


def check_terms(
    *,
    principal: Decimal,
    first_due: date,
    today: date,
    count: int,
    rate: Decimal,
    method: InterestMethod,
    max_amount: Decimal,
    agency: Agency = agencies.DEFAULT,
) -> None:
    """Refuse an amount, first date, installment count or rate outside the limits."""
    if not isinstance(principal, Decimal) or not principal.is_finite() or principal <= 0:
        raise InvalidInput("The amount must be more than zero.", code="amount_not_positive")
    if principal > max_amount:
        raise above_limit(max_amount, agency)
    places = agency.minor_units
    if principal != q(principal, places):
        raise InvalidInput(
            f"Use at most {places} decimal places.", code="amount_decimals", places=places
        )
    if first_due < today:
        raise InvalidInput("That date has passed; give today or a later date.", code="date_past")
    if (first_due - today).days > MAX_DAYS_AHEAD:
        raise InvalidInput("That date is too far away.", code="date_far")
    if not 1 <= count <= MAX_INSTALLMENTS:
        raise InvalidInput(
            f"The installments must be between 1 and {MAX_INSTALLMENTS}.",
            code="int_range",
            field="installments",
        )
    finite = isinstance(rate, Decimal) and rate.is_finite()
    if not finite or not 0 <= rate <= 100 or rate != round(rate, 4):
        raise InvalidInput("The yearly rate must be 0 to 100%.", code="rate_range")
    if method is InterestMethod.NONE and rate:
        raise InvalidInput("Choose flat or reducing interest to set a rate.", code="rate_method")


def checked_schedule(
    terms: dict[str, Any], agency: Agency = agencies.DEFAULT
) -> list[ScheduledInstallment]:
    """The repayment schedule, refused when some installment would be 0.00."""
    schedule = build_schedule(**terms, minor_units=agency.minor_units)
    if any(s.amount <= 0 for s in schedule):
        raise InvalidInput(
            f"{format_money(terms['principal'], agency)} is too little for "
            f"{len(schedule)} installments; "
            "use fewer installments.",
            code="installments_too_many",
        )
    return schedule


def active_holder(session: Session, staff_id: int) -> Staff:
    """The active agent or manager staff_id, who may hold loans; InvalidInput otherwise."""
    staff = session.get(Staff, staff_id)
    if (
        staff is None
        or staff.state != StaffState.ACTIVE
        or staff.role not in (Role.AGENT, Role.MANAGER)
    ):
        raise InvalidInput("That is not an active agent or manager.", code="agent_invalid")
    return staff
