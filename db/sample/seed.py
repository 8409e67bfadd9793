"""Deterministic sample data (staff, borrowers, loans in every state), bulk-inserted fast.

Same seed on an empty database gives the same data. Seeding again adds more: loan numbers
and phones already taken are skipped, and the seed staff (fixed Telegram ids) are reused.
"""

from __future__ import annotations

import random
import time as timer
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db import agency as agencies
from db import clock
from db.agency import Agency
from db.models import AuditEvent, Borrower, BorrowerTag, Loan, Role, Staff, StaffState
from db.sample.contacts import (
    FIRST_NAMES,
    LAST_NAMES,
    STAFF_NAMES,
    TAGS,
    mobile_numbers,
    street_address,
)
from db.sample.loans import LoanRows
from db.sample.rows import CHUNK
from db.sample.shapes import (
    COVERAGE,
    HISTORY_DAYS,
    SEED_ACTION,
    SHAPES,
    STAFF_TELEGRAM_BASE,
    SeedReport,
    Shape,
)
from db.validation import name_key

_OTHER_ZONES = ("Asia/Dubai", "Asia/Singapore", "Europe/London", "America/New_York")


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


class _Builder(LoanRows):
    """The whole run: staff, borrowers, loans, and the audit row saying what was added."""

    # -- people ---------------------------------------------------------------------------
    def staff(self, agents: int) -> tuple[int, list[int]]:
        wanted = [(Role.ADMIN, 1), (Role.MANAGER, 2)] + [(Role.AGENT, 3 + i) for i in range(agents)]
        tg_ids = [STAFF_TELEGRAM_BASE + n for _, n in wanted]
        found = {
            tg_id: staff_id
            for tg_id, staff_id in self.session.execute(
                select(Staff.telegram_user_id, Staff.id).where(Staff.telegram_user_id.in_(tg_ids))
            )
        }
        created, now = 0, self.at(self.today - timedelta(days=HISTORY_DAYS + 30), 9)
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
        phones = mobile_numbers(rng, region, set(self.session.scalars(select(Borrower.phone))))
        for _ in range(count):
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
            since = self.at(self.today - timedelta(days=rng.randint(HISTORY_DAYS, 2000)), 7)
            row = self.add(
                Borrower,
                name=name,
                name_key=name_key(name),
                phone=next(phones),
                address=street_address(rng),
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
        weights = [w for _, w in SHAPES.values()]
        for i in range(count):
            if i < len(COVERAGE):
                shape, partial, promise = COVERAGE[i]
            else:
                shape = self.rng.choices(list(SHAPES), weights)[0]
                partial, promise = self.rng.random() < 0.2, None
            borrower = borrower_ids[i] if i < len(borrower_ids) else self.rng.choice(borrower_ids)
            self.loan(next(numbers), shape, partial, promise, borrower, self.rng.choice(agent_ids))
            if (i + 1) % CHUNK == 0:
                self.flush()
        self.flush()

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
