"""Deterministic sample data (staff, borrowers, loans in every state), bulk-inserted fast.

Same seed on an empty database gives the same data. Seeding again adds more: loan numbers
and phones already taken are skipped, and the seed staff (fixed Telegram ids) are reused.
"""

from __future__ import annotations

import random
import time as timer
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import zip_longest
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumberType
from sqlalchemy import Engine, Table, func, insert, select, text
from sqlalchemy.orm import Session

from db import agency as agencies
from db import clock
from db.agency import Agency
from db.models import (
    AuditEvent,
    Base,
    Borrower,
    BorrowerTag,
    Frequency,
    Installment,
    InterestMethod,
    Loan,
    LoanEvent,
    LoanEventKind,
    LoanState,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    Promise,
    PromiseState,
    Role,
    Staff,
    StaffState,
)
from db.money import build_schedule, q
from db.services.audit.write import AuditAction
from db.validation import name_key

CHUNK = 5_000
SEED_ACTION = AuditAction.SEED.value
STAFF_TELEGRAM_BASE = 900_000_000
ZERO = Decimal("0")
_OTHER_ZONES = ("Asia/Dubai", "Asia/Singapore", "Europe/London", "America/New_York")
# Two-digit mobile prefixes; 98 is left to tests/factories.py so the two never collide.
_IN_PREFIXES = tuple(str(p) for p in (*range(90, 98), 99, *range(70, 90), *range(62, 70)))


class Shape(StrEnum):
    """Where a sample loan stands today."""

    NOT_DUE = "not_due"
    DUE_SOON = "due_soon"
    DUE_TODAY = "due_today"
    OVERDUE_1_30 = "overdue_1_30"
    OVERDUE_31_60 = "overdue_31_60"
    OVERDUE_61_90 = "overdue_61_90"
    OVERDUE_90_PLUS = "overdue_90_plus"
    PAID_OFF = "paid_off"
    WRITTEN_OFF = "written_off"


# Days from today to the first unpaid installment (the last one for PAID_OFF), and weight.
_SHAPES = {
    Shape.NOT_DUE: ((8, 60), 24),
    Shape.DUE_SOON: ((1, 7), 12),
    Shape.DUE_TODAY: ((0, 0), 3),
    Shape.OVERDUE_1_30: ((-30, -1), 14),
    Shape.OVERDUE_31_60: ((-60, -31), 7),
    Shape.OVERDUE_61_90: ((-90, -61), 5),
    Shape.OVERDUE_90_PLUS: ((-400, -91), 6),
    Shape.PAID_OFF: ((-400, -1), 25),
    Shape.WRITTEN_OFF: ((-500, -180), 4),
}
# The oldest loan starts before this many days ago (written off at -500 after 23 months).
_HISTORY_DAYS = 1250
_OVERDUE = {Shape.OVERDUE_1_30, Shape.OVERDUE_31_60, Shape.OVERDUE_61_90, Shape.OVERDUE_90_PLUS}
# The first loans walk through every case, so even a ten-loan seed shows them all.
_COVERAGE = (
    (Shape.NOT_DUE, False, None),
    (Shape.DUE_SOON, True, None),
    (Shape.DUE_TODAY, False, PromiseState.OPEN),
    (Shape.OVERDUE_1_30, True, PromiseState.BROKEN),
    (Shape.OVERDUE_31_60, False, PromiseState.OPEN),
    (Shape.OVERDUE_61_90, True, None),
    (Shape.OVERDUE_90_PLUS, False, PromiseState.BROKEN),
    (Shape.PAID_OFF, False, PromiseState.KEPT),
    (Shape.WRITTEN_OFF, True, None),
)


@dataclass(frozen=True)
class SeedReport:
    """What one run added."""

    staff_created: int
    borrowers: int
    loans: int
    installments: int
    payments: int
    promises: int
    shapes: tuple[tuple[Shape, int], ...]
    seconds: float


def seed(
    target: Session | Engine,
    *,
    borrowers: int,
    loans: int,
    seed: int = 1,
    agents: int = 3,
    today: date,
    agency: Agency = agencies.DEFAULT,
) -> SeedReport:
    """Add sample data; a Session is left for the caller to commit, an Engine is committed.

    agency: its time zone (payment times), phone region (numbers) and minor units (sums)."""
    if loans and not borrowers:
        raise ValueError("loans need at least one borrower")
    where = (agency.zone, agency.region, agency.minor_units)
    if isinstance(target, Engine):
        with Session(target) as session, session.begin():
            return _run(session, random.Random(seed), borrowers, loans, agents, today, *where, seed)
    return _run(target, random.Random(seed), borrowers, loans, agents, today, *where, seed)


def _run(
    session: Session,
    rng: random.Random,
    borrowers: int,
    loans: int,
    agents: int,
    today: date,
    tz: ZoneInfo,
    region: str,
    minor_units: int,
    seed: int,
) -> SeedReport:
    started = timer.perf_counter()
    builder = _Builder(session, rng, today, tz, minor_units)
    staff_created, agent_ids = builder.staff(agents)
    borrower_ids = builder.borrowers(borrowers, region)
    builder.loans(loans, borrower_ids, agent_ids)
    report = builder.report(staff_created, time_taken=timer.perf_counter() - started)
    builder.audit(seed=seed, report=report)
    return report


_RESERVE = text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)")


class _Ids:
    """Primary keys handed out in Python, so rows can point at each other before insert."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.free: dict[str, Iterator[int]] = {}
        self.block: dict[str, int] = {}

    def next(self, table: Table) -> int:
        for _ in range(2):
            value = next(self.free.setdefault(table.name, iter(())), None)
            if value is not None:
                return value
            self.free[table.name] = self._block(table)
        raise RuntimeError(f"no ids for {table.name}")

    def _block(self, table: Table) -> Iterator[int]:
        if self.postgres:
            # Sequences are shared with concurrent writers, so reserve from them; blocks
            # grow from 16 so a handful of staff rows leaves no big gap in their ids.
            size = self.block[table.name] = min(CHUNK, 2 * self.block.get(table.name, 8))
            rows = self.session.execute(_RESERVE, {"t": table.name, "n": size})
            return iter([row[0] for row in rows])
        # SQLite: the write lock is held (BEGIN IMMEDIATE), so max(id) cannot move under us.
        top = self.session.execute(select(func.max(table.c.id))).scalar() or 0
        return iter(range(top + 1, top + 1 + 10**12))


class _Builder:
    """Generates rows with one random.Random; writes them in chunks (Core inserts, or COPY)."""

    def __init__(
        self, session: Session, rng: random.Random, today: date, tz: ZoneInfo, minor_units: int
    ) -> None:
        self.session, self.rng, self.today, self.tz = session, rng, today, tz
        self.minor_units = minor_units
        self.ids = _Ids(session)
        self.rows: dict[Table, list[dict]] = {}
        self.counts: Counter[str] = Counter()
        self.shapes: Counter[Shape] = Counter()

    # -- plumbing -------------------------------------------------------------------------
    def at(self, day: date, hour: int) -> datetime:
        return datetime.combine(day, time(hour, self.rng.randrange(60)), self.tz).astimezone(UTC)

    def add(self, model: type, **row: object) -> dict:
        table = model.__table__
        if "id" in table.c and "id" not in row:
            row = {"id": self.ids.next(table), **row}
        self.rows.setdefault(table, []).append(row)
        self.counts[table.name] += 1
        return row

    def flush(self) -> None:
        for table in Base.metadata.sorted_tables:  # parents before children
            rows = self.rows.get(table, [])
            if rows and self.ids.postgres:
                _copy(self.session, table, rows)
                continue
            for start in range(0, len(rows), CHUNK):
                self.session.execute(insert(table), rows[start : start + CHUNK])
        self.rows = {}

    # -- people ---------------------------------------------------------------------------
    def staff(self, agents: int) -> tuple[int, list[int]]:
        wanted = [(Role.ADMIN, 1), (Role.MANAGER, 2)] + [(Role.AGENT, 3 + i) for i in range(agents)]
        tg_ids = [STAFF_TELEGRAM_BASE + n for _, n in wanted]
        found = dict(
            self.session.execute(
                select(Staff.telegram_user_id, Staff.id).where(Staff.telegram_user_id.in_(tg_ids))
            ).all()
        )
        created, now = 0, self.at(self.today - timedelta(days=_HISTORY_DAYS + 30), 9)
        for role, n in wanted:
            if STAFF_TELEGRAM_BASE + n not in found:
                name = STAFF_NAMES[n - 1] if n <= len(STAFF_NAMES) else f"Agent {n - 2}"
                row = self.add(
                    Staff,
                    telegram_user_id=STAFF_TELEGRAM_BASE + n,
                    name=name,
                    role=role,
                    state=StaffState.ACTIVE,
                    failed_logins=0,
                    created_at=now,
                    updated_at=now,
                )
                found[row["telegram_user_id"]] = row["id"]
                created += 1
        self.flush()
        return created, [found[STAFF_TELEGRAM_BASE + n] for r, n in wanted if r is Role.AGENT]

    def borrowers(self, count: int, region: str) -> list[int]:
        rng, ids = self.rng, []
        phones = _phones(rng, region, set(self.session.scalars(select(Borrower.phone))))
        for _ in range(count):
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            since = self.at(self.today - timedelta(days=rng.randint(_HISTORY_DAYS, 2000)), 7)
            row = self.add(
                Borrower,
                name=name,
                name_key=name_key(name),
                phone=next(phones),
                address=_address(rng),
                created_at=since,
                updated_at=since,
                timezone=rng.choice(_OTHER_ZONES) if rng.random() < 0.04 else None,
                opted_out_at=since + timedelta(days=20) if rng.random() < 0.01 else None,
            )
            if rng.random() < 0.3:
                self.add(BorrowerTag, borrower_id=row["id"], tag=rng.choice(TAGS))
            ids.append(row["id"])
            if len(ids) % CHUNK == 0:
                self.flush()
        self.flush()
        return ids

    # -- loans ----------------------------------------------------------------------------
    def loans(self, count: int, borrower_ids: list[int], agent_ids: list[int]) -> None:
        taken = set(
            self.session.scalars(select(Loan.loan_number).where(Loan.loan_number.like("LN-%")))
        )
        numbers = (n for n in (f"LN-{100_000 + i}" for i in range(1, 10**8)) if n not in taken)
        weights = [w for _, w in _SHAPES.values()]
        for i in range(count):
            if i < len(_COVERAGE):
                shape, partial, promise = _COVERAGE[i]
            else:
                shape = self.rng.choices(list(_SHAPES), weights)[0]
                partial, promise = self.rng.random() < 0.2, None
            borrower = borrower_ids[i] if i < len(borrower_ids) else self.rng.choice(borrower_ids)
            self.loan(next(numbers), shape, partial, promise, borrower, self.rng.choice(agent_ids))
            if (i + 1) % CHUNK == 0:
                self.flush()
        self.flush()

    def plan(self) -> dict:
        rng, kind = self.rng, self.rng.random()
        if kind < 0.35:
            count, freq = 1, Frequency.MONTHLY
        elif kind < 0.75:
            count, freq = rng.choice((3, 6, 6, 12, 24)), Frequency.MONTHLY
        else:
            count, freq = rng.choice((4, 8, 13)), Frequency.WEEKLY
        method = rng.choice(list(InterestMethod))
        rate = ZERO if method is InterestMethod.NONE else Decimal(rng.choice((12, 18, 24, 36)))
        principal = Decimal(rng.randrange(10, 1001) * 500)
        return {
            "principal": principal,
            "count": count,
            "frequency": freq,
            "method": method,
            "annual_rate": rate,
        }

    def loan(
        self,
        number: str,
        shape: Shape,
        partial: bool,
        promise: PromiseState | None,
        borrower_id: int,
        agent_id: int,
    ) -> None:
        rng, plan = self.rng, self.plan()
        (low, high), _ = _SHAPES[shape]
        target = self.today + timedelta(days=rng.randint(low, high))
        count, freq = plan["count"], plan["frequency"]
        if shape is Shape.PAID_OFF:
            unpaid, partial = count, False
            target = target.replace(day=min(target.day, 28))
            first_due = _back(target, freq, count - 1)
        else:
            # Stepping back whole months from day 29-31 would not land on target again.
            monthly_end = freq is Frequency.MONTHLY and target.day > 28
            unpaid = 0 if monthly_end else rng.randrange(count)
            first_due = _back(target, freq, unpaid)
        schedule = build_schedule(first_due=first_due, minor_units=self.minor_units, **plan)
        created = min(
            first_due - timedelta(days=7 if freq is Frequency.WEEKLY else 30),
            self.today - timedelta(days=1),
        )
        paid = self.pay(schedule, unpaid, partial, created)
        loan = {
            "id": self.ids.next(Loan.__table__),
            "loan_number": number,
            "borrower_id": borrower_id,
            "agent_id": agent_id,
            "principal": plan["principal"],
            "interest_method": plan["method"],
            "interest_rate": plan["annual_rate"],
            "installments_count": count,
            "frequency": freq,
            "first_due_date": first_due,
            "created_at": self.at(created, 8),
        }  # before any payment that day
        self.finish(loan, shape, schedule, paid)
        self.shapes[shape] += 1
        if promise is None:
            promise = self.pick_promise(shape, bool(paid))
        if promise is not None:
            self.promise(loan, promise, paid, schedule)

    def pay(self, schedule: list, unpaid: int, partial: bool, created: date) -> list[_Paid]:
        """What was paid on each installment before `unpaid` (and part of it), oldest first."""
        rng, last, paid = self.rng, created, []
        yesterday = self.today - timedelta(days=1)
        for inst in schedule[: unpaid + 1]:
            amount = inst.amount
            if inst.seq > unpaid:  # the first unpaid installment: only part of it, if any
                if not partial or amount < 1:
                    break
                amount = q(amount * rng.randint(10, 90) / 100, self.minor_units)
            last = min(max(inst.due_date + timedelta(days=rng.randint(-5, 10)), last), yesterday)
            at = self.at(last, rng.randint(9, 18))
            if paid and at <= paid[-1].paid_at:  # two on one day: keep them in order
                at = paid[-1].paid_at + timedelta(minutes=1)
            paid.append(_Paid(amount, at))
        return paid

    def finish(self, loan: dict, shape: Shape, schedule: list, paid: list[_Paid]) -> None:
        """The loan row (summary columns as ledger.refresh computes them) and its children."""
        created_at, agent_id = loan["created_at"], loan["agent_id"]
        closed_at, state, reason = None, LoanState.ACTIVE, None
        if shape is Shape.PAID_OFF:
            closed_at, state, reason = paid[-1].paid_at, LoanState.CLOSED, "Paid in full"
        elif shape is Shape.WRITTEN_OFF:
            closed_at = self.at(self.today - timedelta(days=self.rng.randint(1, 60)), 12)
            state, reason = LoanState.WRITTEN_OFF, "Borrower unreachable for months"
        unsettled = [
            s.due_date for s, p in zip_longest(schedule, paid) if not p or p.amount < s.amount
        ]
        self.add(
            Loan,
            **loan,
            state=state,
            state_reason=reason,
            closed_at=closed_at,
            amount_payable=sum((s.amount for s in schedule), ZERO),
            fees_charged=ZERO,
            amount_paid=sum((p.amount for p in paid), ZERO),
            version=1,
            next_due_date=min(unsettled, default=None),
            created_by_id=agent_id,
            updated_by_id=agent_id,
            updated_at=closed_at or (paid[-1].paid_at if paid else created_at),
        )
        self.installments(loan["id"], schedule, paid, agent_id)
        after = {"loan_number": loan["loan_number"], "principal": str(loan["principal"])}
        self.event(loan["id"], agent_id, LoanEventKind.CREATED, created_at, after)
        if closed_at is not None:
            kind = LoanEventKind.CLOSED if state is LoanState.CLOSED else LoanEventKind.WRITTEN_OFF
            self.event(loan["id"], agent_id, kind, closed_at, {"state": state.value}, reason)

    def installments(self, loan_id: int, schedule: list, paid: list[_Paid], agent_id: int) -> None:
        for inst, p in zip_longest(schedule, paid):
            settled = p is not None and p.amount == inst.amount
            row = self.add(
                Installment,
                loan_id=loan_id,
                seq=inst.seq,
                due_date=inst.due_date,
                principal_due=inst.principal,
                interest_due=inst.interest,
                fee_due=ZERO,
                amount_paid=p.amount if p else ZERO,
                fee_paid=ZERO,
                fee_applied_at=None,
                paid_at=p.paid_at if settled else None,
            )
            if p is None:
                continue
            pay = self.add(
                Payment,
                loan_id=loan_id,
                amount=p.amount,
                paid_at=p.paid_at,
                method=self.rng.choice(_METHODS),
                recorded_by_id=agent_id,
                note=None,
                reverses_id=None,
                reversed_at=None,
                created_at=p.paid_at,
            )
            self.add(
                PaymentAllocation,
                payment_id=pay["id"],
                installment_id=row["id"],
                fee_amount=ZERO,
                amount=p.amount,
            )

    def event(
        self,
        loan_id: int,
        staff_id: int,
        kind: LoanEventKind,
        at: datetime,
        after: dict,
        note: str | None = None,
    ) -> None:
        self.add(
            LoanEvent,
            loan_id=loan_id,
            staff_id=staff_id,
            kind=kind,
            before=None,
            after=after,
            note=note,
            created_at=at,
        )

    # -- promises -------------------------------------------------------------------------
    def pick_promise(self, shape: Shape, has_paid: bool) -> PromiseState | None:
        x = self.rng.random()
        if shape in _OVERDUE and x < 0.24:
            return PromiseState.BROKEN if x < 0.12 else PromiseState.OPEN
        return PromiseState.KEPT if has_paid and x > 0.93 else None

    def promise(self, loan: dict, state: PromiseState, paid: list[_Paid], schedule: list) -> None:
        """A promise whose state agrees with the payments made after it (paid_baseline)."""
        rng, total = self.rng, sum((p.amount for p in paid), ZERO)
        outstanding = sum((s.amount for s in schedule), ZERO) - total
        if state is PromiseState.KEPT:
            if not paid:
                return
            made, resolved = paid[-1].paid_at - timedelta(days=rng.randint(2, 7)), paid[-1].paid_at
            promised = resolved.astimezone(self.tz).date() + timedelta(days=rng.randint(0, 3))
        else:
            if outstanding <= 0:
                return
            back = rng.randint(1, 10) if state is PromiseState.BROKEN else -rng.randint(1, 10)
            promised = self.today - timedelta(days=back)
            made = self.at(min(promised, self.today) - timedelta(days=rng.randint(2, 5)), 11)
            resolved = None
            if state is PromiseState.BROKEN:
                resolved = datetime.combine(promised + timedelta(days=1), time(0), self.tz)
        made = max(made, loan["created_at"])
        baseline = sum((p.amount for p in paid if p.paid_at <= made), ZERO)
        amount = (
            paid[-1].amount
            if state is PromiseState.KEPT
            else (total - baseline + min(outstanding, schedule[-1].amount))
        )
        self.add(
            Promise,
            loan_id=loan["id"],
            amount=amount,
            promised_date=promised,
            state=state,
            paid_baseline=baseline,
            made_by_id=loan["agent_id"],
            note=None,
            created_at=made,
            resolved_at=resolved.astimezone(UTC) if resolved else None,
        )

    # -- the run --------------------------------------------------------------------------
    def report(self, staff_created: int, time_taken: float) -> SeedReport:
        c = self.counts
        return SeedReport(
            staff_created=staff_created,
            borrowers=c["borrower"],
            loans=c["loan"],
            installments=c["installment"],
            payments=c["payment"],
            promises=c["promise"],
            shapes=tuple((s, self.shapes[s]) for s in Shape),
            seconds=round(time_taken, 3),
        )

    def audit(self, *, seed: int, report: SeedReport) -> None:
        details = {
            "seed": seed,
            "borrowers": report.borrowers,
            "loans": report.loans,
            "staff_created": report.staff_created,
        }
        self.add(
            AuditEvent,
            staff_id=None,
            telegram_user_id=None,
            action=SEED_ACTION,
            target_type=None,
            target_id=None,
            details=details,
            created_at=clock.utcnow(),
        )
        self.flush()


@dataclass(frozen=True, slots=True)
class _Paid:
    amount: Decimal
    paid_at: datetime


_METHODS = list(PaymentMethod)


def _copy(session: Session, table: Table, rows: list[dict]) -> None:
    """PostgreSQL's COPY: several times faster than executemany for bulk rows."""
    from psycopg.types.json import JsonDumper

    names = list(rows[0])
    cursor = session.connection().connection.driver_connection.cursor()
    # StrEnums are str first in their MRO, so psycopg writes their values; dicts are JSON.
    cursor.adapters.register_dumper(dict, JsonDumper)
    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[name] for name in names])


def _back(day: date, frequency: Frequency, periods: int) -> date:
    """The due date `periods` installments before day (monthly: callers keep day <= 28)."""
    if frequency is Frequency.WEEKLY:
        return day - timedelta(weeks=periods)
    if frequency is Frequency.DAILY:
        return day - timedelta(days=periods)
    months = day.year * 12 + day.month - 1 - periods
    return date(months // 12, months % 12 + 1, day.day)


def _phone_plan(region: str) -> tuple[list[str], int]:
    """E.164 prefixes and how many digits follow them, for mobile numbers in region."""
    if region == "IN":
        return ["+91" + p for p in _IN_PREFIXES], 8
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    if example is None:
        raise ValueError(f"no mobile numbers known for region {region}")
    nsn = phonenumbers.national_significant_number(example)
    keep = max(1, len(nsn) // 2)
    return [f"+{example.country_code}{nsn[:keep]}"], len(nsn) - keep


def _phones(rng: random.Random, region: str, taken: set[str]) -> Iterator[str]:
    """Unique valid mobile numbers not in taken, in a seed-dependent order."""
    prefixes, width = _phone_plan(region)
    space, offset = 10**width, rng.randrange(10**width)

    def numbers() -> Iterator[str]:
        for i in range(len(prefixes) * space):
            # 7919 is coprime with 10, so i -> local is one-to-one within each prefix.
            local = (i // len(prefixes) * 7919 + offset) % space
            number = f"{prefixes[i % len(prefixes)]}{local:0{width}d}"
            if number not in taken and phonenumbers.is_valid_number(phonenumbers.parse(number)):
                yield number
        raise ValueError(f"ran out of sample phone numbers for region {region}")

    return numbers()


def _address(rng: random.Random) -> str:
    city, pin = rng.choice(_CITIES)
    street = f"{rng.choice(_STREETS)} {rng.choice(_STREET_KINDS)}"
    return f"{rng.randint(1, 250)}, {street}, {city} {pin}{rng.randint(1, 99):03d}"


def _words(names: str) -> tuple[str, ...]:
    return tuple(names.split())


FIRST_NAMES = _words(
    "Aarav Aditi Akash Amit Ananya Anil Anjali Arjun Asha Deepak Divya Farhan Gaurav Geeta "
    "Harish Imran Isha Jaya Karan Kavita Lakshmi Mahesh Manoj Meena Mohan Nandini Neha "
    "Nikhil Pooja Prakash Priya Rahul Rajesh Ramesh Ravi Rekha Rohan Sachin Sana Sandeep "
    "Sanjay Sarita Shalini Shweta Simran Sneha Sunil Sunita Suresh Tanvi Usha Varun Vijay "
    "Vikram Vinod Yash Zoya Abdul Fatima Gurpreet Harpreet Joseph Mary Thomas Venkat"
)
LAST_NAMES = _words(
    "Agarwal Bhat Banerjee Chauhan Das Desai Dubey Gupta Iyer Jain Joshi Kapoor Khan Kulkarni "
    "Kumar Malhotra Menon Mishra Nair Pandey Patel Pillai Rao Reddy Saxena Shah Sharma Shetty "
    "Singh Sinha Srivastava Thakur Tiwari Trivedi Verma Yadav Ansari Fernandes Gill Hegde "
    "Mukherjee Naidu Qureshi Sethi Sheikh Chatterjee Dsouza Ghosh Patil Pawar"
)
STAFF_NAMES = (
    "Anita Desai",
    "Rahul Verma",
    "Imran Qureshi",
    "Priya Nair",
    "Sandeep Gill",
    "Kavita Rao",
    "Joseph Fernandes",
    "Neha Kulkarni",
    "Vikram Chauhan",
    "Lakshmi Iyer",
    "Harish Pandey",
)
TAGS = ("shopkeeper", "salaried", "farmer", "driver", "self-employed")
_STREETS = (
    "Gandhi",
    "Nehru",
    "Station",
    "Market",
    "Temple",
    "Lake",
    "Mill",
    "Church",
    "Park",
    "Tilak",
    "Shivaji",
    "Ambedkar",
    "MG",
    "Old Post Office",
    "Bazaar",
)
_STREET_KINDS = ("Road", "Marg", "Street", "Lane", "Nagar", "Colony", "Chowk")
_CITIES = (
    ("Mumbai", "400"),
    ("Pune", "411"),
    ("Delhi", "110"),
    ("Bengaluru", "560"),
    ("Chennai", "600"),
    ("Hyderabad", "500"),
    ("Kolkata", "700"),
    ("Jaipur", "302"),
    ("Lucknow", "226"),
    ("Ahmedabad", "380"),
    ("Indore", "452"),
    ("Nagpur", "440"),
    ("Kochi", "682"),
    ("Surat", "395"),
    ("Patna", "800"),
    ("Bhopal", "462"),
)
