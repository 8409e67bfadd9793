"""The API's requests and answers as pydantic models: money is a decimal string, never a float."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from db.models import (
    ContactChannel,
    ContactOutcome,
    Frequency,
    InterestMethod,
    LoanState,
    MessageKind,
    MessageStatus,
    PaymentMethod,
    PromiseState,
)

_MONEY_PATTERN = r"^-?\d{1,12}(\.\d{1,4})?$"


def _decimal_text(value: Any) -> Any:
    """Amounts come as strings ("1500.50"): a JSON number may already have lost its cents."""
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise ValueError('give the amount as a decimal string, e.g. "1500.50"')
    return value.strip()


# Accepted only as a string; sent as a string.
MoneyIn = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    WithJsonSchema({"type": "string", "pattern": _MONEY_PATTERN, "examples": ["1500.50"]}),
]
Money = Annotated[
    Decimal,
    PlainSerializer(lambda d: str(d), return_type=str),
    WithJsonSchema({"type": "string", "pattern": _MONEY_PATTERN, "examples": ["1500.50"]}),
]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PromiseOut(Out):
    id: int
    amount: Money
    promised_date: date
    state: PromiseState
    made_by: str | None
    created_at: datetime


class ContactOut(Out):
    id: int
    channel: ContactChannel
    outcome: ContactOutcome
    note: str | None
    staff_name: str | None
    created_at: datetime


class LoanSummaryOut(Out):
    id: int
    loan_number: str
    version: int
    state: LoanState
    borrower_name: str
    borrower_phone: str
    outstanding: Money
    next_due_date: date | None
    days_past_due: int
    agent_id: int | None


class LoanPageOut(Out):
    items: list[LoanSummaryOut]
    next_cursor: str | None = Field(description="pass as `after` for the next page")
    prev_cursor: str | None = Field(description="pass as `before` for the previous page")
    total: int | None


class LoanOut(Out):
    id: int
    loan_number: str
    version: int
    state: LoanState
    state_reason: str | None
    borrower_id: int
    borrower_name: str
    borrower_phone: str
    borrower_address: str | None
    borrower_opted_out: bool
    agent_id: int | None
    agent_name: str | None
    principal: Money
    interest_method: InterestMethod
    interest_rate: Money
    installments_count: int
    frequency: Frequency
    first_due_date: date
    amount_payable: Money
    fees_charged: Money
    amount_paid: Money
    outstanding: Money
    next_due_date: date | None
    next_due_amount: Money
    days_past_due: int
    overdue_amount: Money
    installments_paid: int
    open_promise: PromiseOut | None
    last_contact: ContactOut | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class LoanCreate(BaseModel):
    """A new loan, as the bot's /new takes it; the borrower is found by phone or created."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(max_length=40, examples=["+919812345678"])
    name: str = Field(max_length=120)
    address: str | None = Field(default=None, max_length=300)
    principal: MoneyIn
    first_due: date
    count: int = Field(default=1, ge=1, le=600)
    frequency: Frequency = Frequency.MONTHLY
    method: InterestMethod = InterestMethod.NONE
    rate: MoneyIn = Decimal(0)
    loan_number: str | None = Field(default=None, max_length=40)
    agent_id: int | None = Field(default=None, description="managers and admins only")


class BorrowerOut(Out):
    id: int
    name: str
    phone: str
    address: str | None
    opted_out: bool
    loans_count: int


class BorrowerPageOut(Out):
    items: list[BorrowerOut]
    next_after: int | None = Field(description="pass as `after` for the next page")


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MoneyIn
    method: PaymentMethod = PaymentMethod.CASH
    note: str | None = Field(default=None, max_length=500)
    expected_version: int | None = Field(
        default=None, description="refuse (409) if the loan changed since this version"
    )


class AllocationOut(BaseModel):
    installment: int
    fee: Money
    amount: Money


class PaymentOut(BaseModel):
    payment_id: int
    loan_number: str
    amount: Money
    outstanding: Money
    closed: bool
    allocations: list[AllocationOut]
    loan: LoanOut


class PaymentLineOut(Out):
    id: int
    amount: Money
    method: PaymentMethod
    paid_at: datetime
    recorded_by: str | None
    note: str | None
    reversed: bool
    reverses_id: int | None


class PromiseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MoneyIn
    promised_date: date
    note: str | None = Field(default=None, max_length=500)


class MessageOut(Out):
    id: int
    kind: MessageKind
    rule: str | None
    to_phone: str
    body: str
    status: MessageStatus
    error_code: str | None
    segments: int | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    failed_at: datetime | None


class BucketOut(BaseModel):
    bucket: str
    loans: int
    outstanding: Money


class AgentLineOut(Out):
    agent_id: int | None
    name: str
    loans: int
    outstanding: Money
    overdue: int
    collected_month: Money


class DayOut(BaseModel):
    day: date
    collected: Money


class PortfolioOut(BaseModel):
    loans_active: int
    borrowed: Money
    repaid: Money
    outstanding: Money
    overdue_loans: int
    overdue_by_bucket: list[BucketOut]
    collected_today: Money
    collected_month: Money
    per_agent: list[AgentLineOut]
    collections_by_day: list[DayOut]
