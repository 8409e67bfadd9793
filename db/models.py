"""SQLAlchemy 2 models: every table Vasooli keeps (docs/architecture.md). UTC in the database."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    relationship,
)

from db import clock

# Money: fixed point, two minor units is the widest any supported currency needs here.
MONEY_SCALE = 2
Money = Numeric(14, MONEY_SCALE)
# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[StrEnum]) -> SAEnum:
    # Stored as plain strings with a CHECK, so adding a member is a small migration.
    return SAEnum(
        cls,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda e: [m.value for m in e],
        name=f"ck_{cls.__name__.lower()}",
    )


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    AGENT = "agent"
    FINANCE = "finance"  # reads what an admin reads, changes nothing (db.services.access)


class StaffState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DISABLED = "disabled"
    REJECTED = "rejected"


class LoanState(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"
    WRITTEN_OFF = "written_off"


class InterestMethod(StrEnum):
    NONE = "none"
    FLAT = "flat"
    REDUCING = "reducing"


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class PaymentMethod(StrEnum):
    CASH = "cash"
    UPI = "upi"
    BANK = "bank"
    CARD = "card"
    OTHER = "other"


class PromiseState(StrEnum):
    OPEN = "open"
    KEPT = "kept"
    BROKEN = "broken"


class ContactChannel(StrEnum):
    CALL = "call"
    VISIT = "visit"
    SMS = "sms"
    OTHER = "other"


class ContactOutcome(StrEnum):
    PAID = "paid"
    PROMISED = "promised"
    NO_ANSWER = "no_answer"
    REFUSED = "refused"
    WRONG_NUMBER = "wrong_number"
    DISPUTED = "disputed"


class HoldKind(StrEnum):
    """Why collection on a loan is paused (issue 11): a dispute, or hardship until a date."""

    DISPUTE = "dispute"
    HARDSHIP = "hardship"
    PAYMENT = "payment"  # the borrower says a recorded payment was never made (reply NO)


class HoldOutcome(StrEnum):
    UPHELD = "upheld"  # the dispute is right: the manager adjusts or writes off
    REJECTED = "rejected"  # collection resumes
    ENDED = "ended"  # a hardship pause ended early


class MessageKind(StrEnum):
    REMINDER = "reminder"
    BROADCAST = "broadcast"
    NOTICE = "notice"
    REPLY = "reply"


class MessageStatus(StrEnum):
    """Our own life of a message (docs/architecture.md). Some names coincide with an SMS
    provider's; the worker translates the provider's words into these at its boundary."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELED = "canceled"
    SUPPRESSED = "suppressed"


class BroadcastState(StrEnum):
    QUEUED = "queued"
    DONE = "done"
    CANCELED = "canceled"


class LoanEventKind(StrEnum):
    CREATED = "created"
    EDITED = "edited"
    REASSIGNED = "reassigned"
    PAYMENT = "payment"
    PAYMENT_REVERSED = "payment_reversed"
    LATE_FEE = "late_fee"
    PROMISE = "promise"
    PROMISE_KEPT = "promise_kept"
    PROMISE_BROKEN = "promise_broken"
    CONTACT = "contact"
    CLOSED = "closed"
    REOPENED = "reopened"
    WRITTEN_OFF = "written_off"
    REMINDER = "reminder"
    INBOUND_SMS = "inbound_sms"
    ARCHIVED = "archived"
    RESTORED = "restored"


def _now() -> datetime:
    return clock.utcnow()


class Base(DeclarativeBase):
    # Every model is mapped to a Table (DeclarativeBase says FromClause, which has no insert()).
    __table__: ClassVar[Table]

    type_annotation_map = {datetime: UTCDateTime, Decimal: Money, dict[str, Any]: JSON}


class Staff(Base):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    telegram_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(120))
    username: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[Role] = mapped_column(_enum(Role))
    state: Mapped[StaffState] = mapped_column(_enum(StaffState), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class StaffSession(Base):
    """A logged-in period; it ends after an idle time or an absolute time (settings)."""

    __tablename__ = "staff_session"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=_now)
    last_seen_at: Mapped[datetime] = mapped_column(default=_now)
    ended_at: Mapped[datetime | None]


class Invite(Base):
    __tablename__ = "invite"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    expires_at: Mapped[datetime]
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Borrower(Base):
    __tablename__ = "borrower"
    __table_args__ = (
        # Case-insensitive prefix search on names: name_key is the casefolded name, in the
        # "C" collation on PostgreSQL so one btree serves both LIKE 'prefix%' and the
        # ORDER BY name_key, id of the results (SQLite compares bytes anyway).
        Index("ix_borrower_name_key_id", "name_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    name_key: Mapped[str] = mapped_column(
        String(120).with_variant(String(120, collation="C"), "postgresql")
    )
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    address: Mapped[str | None] = mapped_column(String(300))
    timezone: Mapped[str | None] = mapped_column(String(64))
    opted_out_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)

    tags: Mapped[list[BorrowerTag]] = relationship(
        back_populates="borrower", cascade="all, delete-orphan"
    )


class BorrowerTag(Base):
    __tablename__ = "borrower_tag"

    borrower_id: Mapped[int] = mapped_column(
        ForeignKey("borrower.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)

    borrower: Mapped[Borrower] = relationship(back_populates="tags")


class Loan(Base):
    __tablename__ = "loan"
    __table_args__ = (
        Index("ix_loan_agent_state_due", "agent_id", "state", "next_due_date"),
        Index("ix_loan_state_due", "state", "next_due_date"),
        CheckConstraint("amount_paid >= 0", name="ck_loan_paid_nonneg"),
        CheckConstraint("principal > 0", name="ck_loan_principal_pos"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    loan_number: Mapped[str] = mapped_column(String(32), unique=True)
    borrower_id: Mapped[int] = mapped_column(ForeignKey("borrower.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    principal: Mapped[Decimal]
    interest_method: Mapped[InterestMethod] = mapped_column(_enum(InterestMethod))
    # Annual rate in percent, e.g. 24.0000 for 24 % a year.
    interest_rate: Mapped[Decimal] = mapped_column(Numeric(7, 4), default=Decimal("0"))
    installments_count: Mapped[int] = mapped_column(Integer, default=1)
    frequency: Mapped[Frequency] = mapped_column(_enum(Frequency))
    first_due_date: Mapped[date] = mapped_column(Date)
    # Kept in step with the installments by the services, so lists and reports at a
    # million loans filter on indexed columns instead of aggregating installments.
    amount_payable: Mapped[Decimal]
    fees_charged: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    amount_paid: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    next_due_date: Mapped[date | None] = mapped_column(Date)
    state: Mapped[LoanState] = mapped_column(_enum(LoanState), default=LoanState.ACTIVE)
    state_reason: Mapped[str | None] = mapped_column(String(300))
    closed_at: Mapped[datetime | None]
    # Set instead of deleting (issue 9 item 8): an archived loan keeps every row, is hidden
    # from lists, searches, reminders and reports, and only admins open or restore it.
    archived_at: Mapped[datetime | None]
    archived_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    archive_reason: Mapped[str | None] = mapped_column(String(300))
    # Bumped on every change: a button made for version N acts only on version N.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(default=_now, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=_now, index=True)

    borrower: Mapped[Borrower] = relationship(lazy="joined", innerjoin=True)
    installments: Mapped[list[Installment]] = relationship(
        back_populates="loan",
        order_by="Installment.seq",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def outstanding(self) -> Decimal:
        return self.amount_payable + self.fees_charged - self.amount_paid


class Installment(Base):
    __tablename__ = "installment"
    __table_args__ = (
        UniqueConstraint("loan_id", "seq", name="uq_installment_loan_seq"),
        Index("ix_installment_due_date", "due_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id", ondelete="RESTRICT"))
    seq: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    principal_due: Mapped[Decimal]
    interest_due: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    fee_due: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    amount_paid: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    fee_paid: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    fee_applied_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]

    loan: Mapped[Loan] = relationship(back_populates="installments")

    @property
    def amount_due(self) -> Decimal:
        return self.principal_due + self.interest_due


class Payment(Base):
    __tablename__ = "payment"
    __table_args__ = (Index("uq_payment_receipt_number", "receipt_number", unique=True),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id", ondelete="RESTRICT"), index=True)
    # Negative for a reversal row, which points at the payment it reverses.
    amount: Mapped[Decimal]
    method: Mapped[PaymentMethod] = mapped_column(_enum(PaymentMethod))
    paid_at: Mapped[datetime] = mapped_column(default=_now, index=True)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    note: Mapped[str | None] = mapped_column(String(500))
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"), unique=True)
    reversed_at: Mapped[datetime | None]
    # R-<year>-<id>: told to the borrower, who replies NO if they did not pay (issue 11).
    receipt_number: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class LoanHold(Base):
    """A dispute or a hardship pause on a loan: reminders and late fees stop while it is open
    (resolved_at NULL and, for hardship, until the day `until`). Rows are kept as history."""

    __tablename__ = "loan_hold"
    __table_args__ = (Index("ix_loan_hold_loan_resolved", "loan_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id", ondelete="RESTRICT"))
    kind: Mapped[HoldKind] = mapped_column(_enum(HoldKind))
    note: Mapped[str] = mapped_column(String(500))
    # NULL when the borrower opened it (a DISPUTE by SMS).
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    opened_at: Mapped[datetime] = mapped_column(default=_now)
    until: Mapped[date | None] = mapped_column(Date)  # hardship: collection resumes on it
    # PAYMENT holds: the payment the borrower denies (collection goes on meanwhile).
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id", ondelete="RESTRICT"))
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    outcome: Mapped[HoldOutcome | None] = mapped_column(_enum(HoldOutcome))
    resolution_note: Mapped[str | None] = mapped_column(String(500))


class PaymentAllocation(Base):
    """How much of a payment went to one installment's fee and amount (undone on reversal)."""

    __tablename__ = "payment_allocation"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    payment_id: Mapped[int] = mapped_column(
        ForeignKey("payment.id", ondelete="RESTRICT"), index=True
    )
    installment_id: Mapped[int] = mapped_column(
        ForeignKey("installment.id", ondelete="RESTRICT"), index=True
    )
    fee_amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    amount: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))


class Promise(Base):
    __tablename__ = "promise"
    __table_args__ = (Index("ix_promise_state_date", "state", "promised_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id", ondelete="RESTRICT"), index=True)
    amount: Mapped[Decimal]
    promised_date: Mapped[date] = mapped_column(Date)
    state: Mapped[PromiseState] = mapped_column(_enum(PromiseState), default=PromiseState.OPEN)
    # Loan.amount_paid when the promise was made: payments after it count towards it.
    paid_baseline: Mapped[Decimal] = mapped_column(Money, default=Decimal("0"))
    made_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    resolved_at: Mapped[datetime | None]


class Contact(Base):
    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id", ondelete="RESTRICT"), index=True)
    channel: Mapped[ContactChannel] = mapped_column(_enum(ContactChannel))
    outcome: Mapped[ContactOutcome] = mapped_column(_enum(ContactOutcome))
    note: Mapped[str | None] = mapped_column(String(1000))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class LoanEvent(Base):
    """Every change to a loan: who, when, what it was before and after."""

    __tablename__ = "loan_event"
    __table_args__ = (Index("ix_loan_event_loan_created", "loan_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loan.id", ondelete="RESTRICT"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    kind: Mapped[LoanEventKind] = mapped_column(_enum(LoanEventKind))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    note: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class AuditEvent(Base):
    """Every staff action and auth event; no foreign key to what it names, so it outlives it."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_staff_created", "staff_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(40), index=True)
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=_now, index=True)


class ApiKey(Base):
    """A key for the JSON API (api/): it acts as its staff member, limited by its scopes.

    Only the sha256 of the token is kept (the token is random, 256 bits: no slow hash needed);
    the prefix is shown in lists. Reads are counted per day here rather than audited one by
    one (writes are audited per call); rate limiting counts calls per minute here too.
    """

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    name: Mapped[str] = mapped_column(String(60))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated ApiScope values
    created_at: Mapped[datetime] = mapped_column(default=_now)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    # Calls in the current rate window (one minute from window_started_at).
    window_started_at: Mapped[datetime | None]
    window_calls: Mapped[int] = mapped_column(Integer, default=0)
    # Reads (GET) on reads_day, and in all; a new day audits the finished day's count.
    reads_day: Mapped[date | None] = mapped_column(Date)
    reads_on_day: Mapped[int] = mapped_column(Integer, default=0)
    reads_total: Mapped[int] = mapped_column(BigInteger, default=0)


class IdempotencyKey(Base):
    """The first answer to a write sent with an Idempotency-Key header, to replay on retries."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("api_key_id", "key", name="uq_idempotency_key_api_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_key.id"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Broadcast(Base):
    __tablename__ = "broadcast"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    audience: Mapped[dict[str, Any]]
    template: Mapped[str] = mapped_column(Text)
    state: Mapped[BroadcastState] = mapped_column(_enum(BroadcastState))
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    progress_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    canceled_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Message(Base):
    """The outbox: one row per SMS we mean to send, and what became of it."""

    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_status_send_after", "status", "send_after"),
        Index("ix_message_borrower_created", "borrower_id", "created_at"),
        Index("ix_message_broadcast_status", "broadcast_id", "status"),
        # Delivery reports count the last day / week by creation time.
        Index("ix_message_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    to_phone: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[MessageKind] = mapped_column(_enum(MessageKind))
    borrower_id: Mapped[int | None] = mapped_column(ForeignKey("borrower.id", ondelete="SET NULL"))
    loan_id: Mapped[int | None] = mapped_column(
        ForeignKey("loan.id", ondelete="SET NULL"), index=True
    )
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcast.id"))
    # The loan's version when the text was written: the dispatcher sends a loan's message
    # only while the loan is still at that version (db.services.sms.truth).
    loan_version: Mapped[int | None] = mapped_column(Integer)
    rule: Mapped[str | None] = mapped_column(String(24))
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    status: Mapped[MessageStatus] = mapped_column(_enum(MessageStatus))
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    error_code: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(String(500))
    # Why it failed, in our words, written by the worker at its boundary (error_code is the
    # provider's reference, kept as it came; db/ never interprets it).
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    segments: Mapped[int | None] = mapped_column(Integer)
    send_after: Mapped[datetime] = mapped_column(default=_now)
    expires_at: Mapped[datetime | None]
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    sending_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class MessageEvent(Base):
    __tablename__ = "message_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(24))
    source: Mapped[str] = mapped_column(String(24))
    error_code: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=_now)


class SuppressionKind(StrEnum):
    """Why a number is suppressed, which decides who may lift it (db/services/sms/suppressions)."""

    PERMANENT = "permanent"  # the number is wrong, a landline, or blocked: an admin lifts it
    UNREACHABLE = "unreachable"  # too many temporary failures in a row: START or an admin
    OPT_OUT = "opt_out"  # unsubscribed, no borrower has the number: only the borrower's START


class Suppression(Base):
    """Numbers we do not text until the suppression is lifted (START or an admin)."""

    __tablename__ = "suppression"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    reason: Mapped[str] = mapped_column(String(120))
    error_code: Mapped[str | None] = mapped_column(String(16))
    kind: Mapped[SuppressionKind] = mapped_column(
        _enum(SuppressionKind),
        default=SuppressionKind.PERMANENT,
        server_default=SuppressionKind.PERMANENT.value,
    )
    created_at: Mapped[datetime] = mapped_column(default=_now)


class SuppressionLift(Base):
    """History: a suppression that was lifted, what it was, who lifted it and why."""

    __tablename__ = "suppression_lift"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)
    kind: Mapped[SuppressionKind] = mapped_column(_enum(SuppressionKind))
    suppressed_reason: Mapped[str] = mapped_column(String(120))
    error_code: Mapped[str | None] = mapped_column(String(16))
    suppressed_at: Mapped[datetime]
    via: Mapped[str] = mapped_column(String(16))  # "start", "admin" or "migration"
    lifted_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(String(200))
    lifted_at: Mapped[datetime] = mapped_column(default=_now)


class UnreachableStreak(Base):
    """Temporary failures to a number since its last delivery (reset by a delivered SMS)."""

    __tablename__ = "unreachable_streak"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_code: Mapped[str | None] = mapped_column(String(16))
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]


class InboundMessage(Base):
    __tablename__ = "inbound_message"
    __table_args__ = (Index("ix_inbound_loan_received", "loan_id", "received_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    from_phone: Mapped[str] = mapped_column(String(20), index=True)
    body: Mapped[str] = mapped_column(Text)
    keyword: Mapped[str | None] = mapped_column(String(16))
    borrower_id: Mapped[int | None] = mapped_column(ForeignKey("borrower.id", ondelete="SET NULL"))
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loan.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(default=_now)
    relayed_at: Mapped[datetime | None]
    # A keyword's answer: "queued", or "rate_limited" when not answered (None: none due).
    reply_state: Mapped[str | None] = mapped_column(String(16))


class ApprovalKind(StrEnum):
    """An action that needs a second person (db/services/approvals/: one handler per kind)."""

    NEW_LOAN = "new_loan"
    WRITE_OFF = "write_off"
    REVERSAL = "reversal"
    DUE_DATE_MOVE = "due_date_move"


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ApprovalRequest(Base):
    """A change asked for by one person and decided by another (four eyes)."""

    __tablename__ = "approval_request"
    __table_args__ = (Index("ix_approval_state_created", "state", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[ApprovalKind] = mapped_column(_enum(ApprovalKind))
    state: Mapped[ApprovalState] = mapped_column(
        _enum(ApprovalState), default=ApprovalState.PENDING
    )
    loan_id: Mapped[int | None] = mapped_column(
        ForeignKey("loan.id", ondelete="RESTRICT"), index=True
    )
    # The requested change, as its kind's handler reads it (strings: Decimals, dates).
    payload: Mapped[dict[str, Any]]
    # The least role that may decide it, fixed when it is requested.
    approver_role: Mapped[Role] = mapped_column(_enum(Role))
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    note: Mapped[str | None] = mapped_column(String(300))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    decided_at: Mapped[datetime | None]
    reminded_at: Mapped[datetime | None]
    # When the requester was told the outcome in Telegram (the bot's job sets it).
    outcome_told_at: Mapped[datetime | None]


class ApprovalCard(Base):
    """One approver's card for a request: queued by the service, sent and edited by the bot."""

    __tablename__ = "approval_card"
    __table_args__ = (UniqueConstraint("approval_id", "staff_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    approval_id: Mapped[int] = mapped_column(
        ForeignKey("approval_request.id", ondelete="CASCADE"), index=True
    )
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    sent_at: Mapped[datetime | None]
    # When the card was brought up to date after the decision (or dropped unsent).
    settled_at: Mapped[datetime | None]


class BotState(Base):
    """python-telegram-bot persistence (conversations, user/chat/bot data) in the database."""

    __tablename__ = "bot_state"

    namespace: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class FinancialRecordDeleted(RuntimeError):
    """Something tried to delete a loan or a row of its money or history: archive instead."""


# Nothing in the product ever deletes a financial record (issue 9 item 8); a loan is archived.
FINANCIAL_RECORDS = (
    Loan,
    Installment,
    Payment,
    PaymentAllocation,
    Promise,
    Contact,
    LoanEvent,
    LoanHold,
)


@event.listens_for(Session, "before_flush")
def _refuse_financial_deletes(session: Session, _context: object, _instances: object) -> None:
    for obj in session.deleted:
        if isinstance(obj, FINANCIAL_RECORDS):
            raise FinancialRecordDeleted(
                f"{type(obj).__name__} rows are never deleted; archive the loan instead"
            )


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_financial_deletes(state: ORMExecuteState) -> None:
    # session.execute(delete(Payment)...) bypasses the flush; refuse it too.
    if state.is_delete:
        mapper = state.bind_arguments.get("mapper")
        if mapper is not None and issubclass(mapper.class_, FINANCIAL_RECORDS):
            raise FinancialRecordDeleted(
                f"{mapper.class_.__name__} rows are never deleted; archive the loan instead"
            )
