"""Settings, read from the environment or a .env file (never at import time)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import time
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from db import redact

log = logging.getLogger(__name__)


class SettingsError(Exception):
    """Settings are missing or malformed: one line per problem, each naming the setting."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class SmsBackend(StrEnum):
    TWILIO = "twilio"
    CONSOLE = "console"


class LateFeeKind(StrEnum):
    NONE = "none"
    FIXED = "fixed"
    PERCENT = "percent"


class Settings(BaseSettings):
    """Every setting of Vasooli; each is an environment variable, documented in README.md."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str = "sqlite:///vasooli.db"

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_bot_username: str | None = None

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    sms_backend: SmsBackend | None = None
    public_base_url: str | None = None
    port: int = Field(default=8080, ge=1, le=65535)

    agency_name: str = Field(default="Vasooli", min_length=1, max_length=60)
    agency_phone: str | None = None
    agency_timezone: str = "Asia/Kolkata"
    default_phone_region: str = "IN"
    currency: str = Field(default="INR", pattern=r"^[A-Z]{3}$")
    # How staff write amounts (digit grouping, decimal sign): en_IN reads 1,50,000.50.
    agency_locale: str = "en_IN"
    max_amount: Decimal = Field(default=Decimal("100000000"), gt=0)

    session_idle_minutes: int = Field(default=120, ge=1)
    session_max_hours: int = Field(default=24 * 7, ge=1)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_minutes: int = Field(default=15, ge=1)
    invite_valid_hours: int = Field(default=72, ge=1)

    late_fee_kind: LateFeeKind = LateFeeKind.NONE
    late_fee_amount: Decimal = Field(default=Decimal("0"), ge=0)
    late_fee_percent: Decimal = Field(default=Decimal("0"), ge=0, le=100)
    late_fee_grace_days: int = Field(default=3, ge=0)

    # Four eyes (issue 11): a write-off of more than this is decided by an admin only; a
    # pending request older than APPROVAL_REMIND_HOURS is reminded once to its approvers.
    approval_write_off_admin_above: Decimal = Field(default=Decimal("100000"), ge=0)
    approval_remind_hours: int = Field(default=4, ge=1, le=720)

    # The worker: reminder rules are days relative to a due date (-3 = three days before).
    reminder_rules: str = "-3,0,1,7,14,30"
    sms_allowed_hours: str = "08:00-19:00"
    sms_frequency_cap: int = Field(default=3, ge=1)
    sms_frequency_days: int = Field(default=7, ge=1)
    sms_rate_per_second: float = Field(default=10.0, gt=0, le=1000)
    sms_max_attempts: int = Field(default=5, ge=1, le=20)
    sms_retry_base_seconds: float = Field(default=30.0, gt=0)
    sms_batch_size: int = Field(default=100, ge=1, le=5000)
    # A claim on a message (SENDING) lasts this long; then another worker may settle it.
    sms_claim_seconds: float = Field(default=600.0, ge=1)
    sms_expiry_hours: int = Field(default=48, ge=1)
    reconcile_after_hours: float = Field(default=2.0, gt=0)
    dispatch_interval_seconds: float = Field(default=5.0, gt=0)
    daily_jobs_at: str = "06:00"
    notify_payment_received: bool = True
    notify_loan_closed: bool = True
    # A number is suppressed after this many temporary failures (unreachable handset) in a row
    # within this many days; a delivered SMS resets the count.
    sms_unreachable_limit: int = Field(default=5, ge=1, le=100)
    sms_unreachable_days: int = Field(default=7, ge=1, le=365)
    # Answers to HELP / BAL / START one number gets in an hour; more are recorded, not answered.
    sms_keyword_replies_per_hour: int = Field(default=3, ge=1, le=100)

    # The bot: commands an agent may send in a minute before being asked to slow down.
    bot_commands_per_minute: int = Field(default=30, ge=1)

    # The Mini App (bot/miniapp/): Telegram's initData older than this is refused, and the
    # page's own session (a signed cookie) lasts this long before initData is asked again.
    miniapp_auth_max_age_seconds: int = Field(default=300, ge=10, le=86400)
    miniapp_session_minutes: int = Field(default=30, ge=1, le=24 * 60)

    # /export: the bot edits its progress message once per this many rows written.
    export_progress_rows: int = Field(default=5000, ge=100, le=1_000_000)
    # A borrower texting STATEMENT gets a signed link to their PDF statement, valid this
    # many hours. The key: this secret, or one derived from TWILIO_AUTH_TOKEN when unset
    # (changing either voids every link given out). No key or no PUBLIC_BASE_URL: no link.
    statement_link_secret: SecretStr | None = None
    statement_link_hours: int = Field(default=24, ge=1, le=24 * 7)
    # The JSON API (api/): calls one API key may make in a minute before a 429.
    api_rate_per_minute: int = Field(default=120, ge=1, le=100_000)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgres://")
        elif value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:// or postgresql:// URL")
        return value

    @field_validator("agency_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("default_phone_region")
    @classmethod
    def _region(cls, value: str) -> str:
        value = value.upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {value!r}")
        return value

    @field_validator("agency_locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            return str(Locale.parse(value.strip().replace("-", "_")))
        except (UnknownLocaleError, ValueError, TypeError) as exc:
            raise ValueError(f"unknown locale {value!r}, e.g. en_IN or en_US") from exc

    @field_validator("telegram_api_base_url", "twilio_api_base_url", "public_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value and not value.endswith("/bot") else value

    @field_validator("reminder_rules")
    @classmethod
    def _rules(cls, value: str) -> str:
        try:
            days = [int(part) for part in value.split(",") if part.strip()]
        except ValueError:
            raise ValueError("must be comma-separated whole days, e.g. -3,0,1,7") from None
        if not days or any(abs(d) > 365 for d in days):
            raise ValueError("must list 1+ days between -365 and 365")
        return ",".join(str(d) for d in sorted(set(days)))

    @field_validator("sms_allowed_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        start, end = _parse_window(value)
        if start >= end:
            raise ValueError("the window must start before it ends, e.g. 08:00-19:00")
        return value

    @field_validator("daily_jobs_at")
    @classmethod
    def _daily(cls, value: str) -> str:
        _parse_hhmm(value)
        return value

    @model_validator(mode="after")
    def _sms_backend(self) -> Settings:
        if self.sms_backend is None:
            has_twilio = self.twilio_account_sid and self.twilio_auth_token
            self.sms_backend = SmsBackend.TWILIO if has_twilio else SmsBackend.CONSOLE
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() and str() show the database URL without its password.
        for name, value in super().__repr_args__():
            yield name, redact.mask_url(value) if name == "database_url" else value

    def secret_values(self) -> list[str]:
        """The values no log line may show (the database password is found by redact)."""
        secrets = (
            self.telegram_bot_token,
            self.twilio_auth_token,
            self.telegram_webhook_secret,
            self.statement_link_secret,
        )
        return [s.get_secret_value() for s in secrets if s is not None]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.agency_timezone)

    @property
    def reminder_days(self) -> list[int]:
        return [int(d) for d in self.reminder_rules.split(",")]

    @property
    def allowed_window(self) -> tuple[time, time]:
        return _parse_window(self.sms_allowed_hours)

    @property
    def daily_time(self) -> time:
        return _parse_hhmm(self.daily_jobs_at)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _parse_hhmm(text: str) -> time:
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"{text!r} is not a time like 08:00") from None


def _parse_window(text: str) -> tuple[time, time]:
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError("must look like 08:00-19:00")
    return _parse_hhmm(start), _parse_hhmm(end)


def settings_problems(exc: ValidationError) -> tuple[str, ...]:
    """One short line per bad setting: `setting PORT is invalid: <what is wrong>`."""
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err.get("loc", ())).upper() or "settings"
        msg = str(err.get("msg", "bad value")).removeprefix("Value error, ")
        lines.append(f"setting {name} is invalid: {msg}")
    return tuple(dict.fromkeys(lines))  # in order, each once


def load_settings(**overrides: Any) -> Settings:
    """Read the settings now; raise SettingsError with a line for each bad one.

    From then on the settings' secrets are masked in every log line (db/redact.py).
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(*settings_problems(exc)) from None
    redact.protect(database_url=settings.database_url, secrets=settings.secret_values())
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once on first use."""
    return load_settings()


def required_secret(secret: SecretStr | None, name: str) -> str:
    """The value of a secret setting this command needs; SettingsError when it is not set."""
    if secret is None or not secret.get_secret_value():
        raise SettingsError(f"setting {name.upper()} is required for this command")
    return secret.get_secret_value()


def require(settings: Settings, *names: str) -> None:
    """Stop with one line when a setting this command needs is not set."""
    for name in names:
        if getattr(settings, name) in (None, ""):
            raise SettingsError(f"setting {name.upper()} is required for this command")
