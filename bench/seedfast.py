"""A fast seeder for benchmarks: COPY into PostgreSQL, batched INSERTs into SQLite.

Rows are generated from a seeded random.Random, with the ledger columns as the services
keep them (loan.amount_payable = sum of installments, amount_paid = sum paid,
next_due_date = the oldest unsettled installment, closed when all are paid). The data is
addressable without a query: loan_number(i), phone(i) and name(i) give loan/borrower i.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import insert, select, text

from bench.common import Bench, Ctx, Goal, psycopg_dsn
from db.models import Role, Staff, StaffState
from db.validation import name_key

CHUNK = 20_000
AGENTS = 50
MANAGER_TELEGRAM_ID = 880_000_000
FIRST = (
    "Aarav",
    "Aditi",
    "Akash",
    "Amit",
    "Ananya",
    "Anil",
    "Anjali",
    "Arjun",
    "Asha",
    "Deepak",
    "Divya",
    "Gaurav",
    "Geeta",
    "Harish",
    "Isha",
    "Karan",
    "Kavita",
    "Kiran",
    "Lakshmi",
    "Manoj",
    "Meena",
    "Mohan",
    "Neha",
    "Nikhil",
    "Pooja",
    "Pradeep",
    "Priya",
    "Rahul",
    "Raj",
    "Rajesh",
    "Ramesh",
    "Ravi",
    "Rekha",
    "Rohit",
    "Sanjay",
    "Sarita",
    "Shreya",
    "Sunil",
    "Sunita",
    "Suresh",
    "Tanvi",
    "Uma",
    "Varun",
    "Vijay",
    "Vikram",
    "Vinod",
    "Yash",
    "Zoya",
)
LAST = (
    "Agarwal",
    "Bhat",
    "Chopra",
    "Das",
    "Desai",
    "Gupta",
    "Iyer",
    "Jain",
    "Joshi",
    "Kapoor",
    "Khan",
    "Kumar",
    "Malhotra",
    "Mehta",
    "Mishra",
    "Nair",
    "Patel",
    "Pillai",
    "Rao",
    "Reddy",
    "Sharma",
    "Shah",
    "Singh",
    "Sinha",
    "Verma",
    "Yadav",
)
BORROWER_COLS = (
    "id",
    "name",
    "name_key",
    "phone",
    "address",
    "timezone",
    "opted_out_at",
    "created_at",
    "updated_at",
)
LOAN_COLS = (
    "id",
    "loan_number",
    "borrower_id",
    "agent_id",
    "principal",
    "interest_method",
    "interest_rate",
    "installments_count",
    "frequency",
    "first_due_date",
    "amount_payable",
    "fees_charged",
    "amount_paid",
    "next_due_date",
    "state",
    "closed_at",
    "version",
    "created_at",
    "updated_at",
)
INST_COLS = (
    "id",
    "loan_id",
    "seq",
    "due_date",
    "principal_due",
    "interest_due",
    "fee_due",
    "amount_paid",
    "fee_paid",
    "paid_at",
)
PAY_COLS = ("id", "loan_id", "amount", "method", "paid_at", "recorded_by_id", "created_at")

Row = Sequence[str | None]


def loan_number(i: int) -> str:
    return f"LN-{i:07d}"


def phone(i: int) -> str:
    return f"+919{i:09d}"


def name(i: int) -> str:
    return f"{FIRST[i % len(FIRST)]} {LAST[(i // len(FIRST)) % len(LAST)]}"


def borrowers_for(loans: int) -> int:
    """300,000 borrowers for 1,000,000 loans: about 3.3 loans each."""
    return max(1, loans * 3 // 10)


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def add_months(day: date, months: int) -> date:
    """day plus months (the day of month is at most 28, so it always exists)."""
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, day.day)


@dataclass
class Counts:
    borrowers: int = 0
    loans: int = 0
    installments: int = 0
    payments: int = 0

    @property
    def rows(self) -> int:
        return self.borrowers + self.loans + self.installments + self.payments


class _Gen:
    """Row tuples (strings) for one backend's timestamp format."""

    def __init__(self, today: date, postgres: bool, agent_ids: list[int], seed: int) -> None:
        self.today, self.postgres, self.agents = today, postgres, agent_ids
        self.rng = random.Random(seed)
        self.inst_id = self.pay_id = 0

    def ts(self, day: date, hour: int = 10) -> str:
        return f"{day.isoformat()} {hour:02d}:00:00" + ("+00" if self.postgres else ".000000")

    def borrower(self, i: int) -> Row:
        n, now = name(i), self.ts(self.today, 6)
        zone = "Asia/Dubai" if i % 50 == 0 else None
        opted = now if i % 100 == 0 else None
        return (str(i), n, name_key(n), phone(i), None, zone, opted, now, now)

    def loan(self, i: int, borrowers: int) -> tuple[Row, list[Row], list[Row]]:
        rng = self.rng
        first = self.today + timedelta(days=rng.randint(-330, 40))
        first -= timedelta(days=max(0, first.day - 28))
        k = rng.choice((3, 6, 6, 12))
        dues = [add_months(first, j) for j in range(k)]
        past = sum(1 for d in dues if d < self.today)
        luck = rng.random()
        paid = past if luck < 0.6 else max(0, past - rng.randint(1, 3)) if luck < 0.9 else 0
        principal = rng.randrange(10_000, 50_000) * 100
        base = principal // k
        shares = [base] * (k - 1) + [principal - base * (k - 1)]
        insts = [self._inst(i, j, dues[j], shares[j], paid_at=j < paid) for j in range(k)]
        amount_paid = sum(shares[:paid])
        closed = paid == k
        pays = [self._pay(i, amount_paid, dues[paid - 1])] if paid else []
        created = self.ts(first - timedelta(days=30))
        loan = (
            str(i),
            loan_number(i),
            str((i - 1) % borrowers + 1),
            str(self.agents[i % len(self.agents)]),
            money(principal),
            "none",
            "0",
            str(k),
            "monthly",
            first.isoformat(),
            money(principal),
            "0",
            money(amount_paid),
            None if closed else dues[paid].isoformat(),
            "closed" if closed else "active",
            self.ts(dues[-1], 12) if closed else None,
            "1",
            created,
            created,
        )
        return loan, insts, pays

    def _inst(self, loan_id: int, j: int, due: date, share: int, *, paid_at: bool) -> Row:
        self.inst_id += 1
        amount = money(share)
        return (
            str(self.inst_id),
            str(loan_id),
            str(j + 1),
            due.isoformat(),
            amount,
            "0",
            "0",
            amount if paid_at else "0",
            "0",
            self.ts(due, 11) if paid_at else None,
        )

    def _pay(self, loan_id: int, amount: int, day: date) -> Row:
        self.pay_id += 1
        at = self.ts(day, 11)
        return (str(self.pay_id), str(loan_id), money(amount), "cash", at, None, at)


class _PgSink:
    """COPY FROM STDIN (text format) through psycopg 3, foreign-key triggers off."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(psycopg_dsn(url))
        # Rows are generated consistent; FK triggers per row would double the load time.
        self.conn.execute("SET session_replication_role = replica")

    def write(self, table: str, cols: tuple[str, ...], rows: list[Row]) -> None:
        data = "".join("\t".join("\\N" if v is None else v for v in row) + "\n" for row in rows)
        sql = f"COPY {table} ({', '.join(cols)}) FROM STDIN"
        with self.conn.cursor() as cur, cur.copy(sql) as cp:
            cp.write(data)

    def close(self, tables: list[str]) -> None:
        for table in tables:
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        self.conn.commit()
        self.conn.autocommit = True
        self.conn.execute("ANALYZE")
        self.conn.close()


class _SqliteSink:
    """executemany of one INSERT per table inside one transaction."""

    def __init__(self, ctx: Ctx) -> None:
        self.raw = ctx.engine.raw_connection()
        self.cur = self.raw.cursor()
        self.cur.execute("BEGIN")

    def write(self, table: str, cols: tuple[str, ...], rows: list[Row]) -> None:
        marks = ", ".join("?" * len(cols))
        self.cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)

    def close(self, tables: list[str]) -> None:
        self.cur.execute("COMMIT")
        self.cur.execute("ANALYZE")
        self.raw.close()


def _staff(ctx: Ctx) -> None:
    """One manager and AGENTS agents, through the ORM table (few rows)."""
    rows = [
        {
            "telegram_user_id": MANAGER_TELEGRAM_ID,
            "name": "Bench Manager",
            "role": Role.MANAGER,
            "state": StaffState.ACTIVE,
            "failed_logins": 0,
        }
    ]
    rows += [
        {
            "telegram_user_id": MANAGER_TELEGRAM_ID + n,
            "name": f"Agent {n}",
            "role": Role.AGENT,
            "state": StaffState.ACTIVE,
            "failed_logins": 0,
        }
        for n in range(1, AGENTS + 1)
    ]
    with ctx.factory.begin() as session:
        stmt = insert(Staff).returning(Staff.id, sort_by_parameter_order=True)
        ids = list(session.scalars(stmt, rows))
    ctx.manager_id, ctx.agent_ids = ids[0], ids[1:]


def _chunks(total: int) -> Iterator[range]:
    for start in range(1, total + 1, CHUNK):
        yield range(start, min(total + 1, start + CHUNK))


def seed(ctx: Ctx, *, seed: int = 7) -> Counts:
    """Staff, ctx.borrowers borrowers and ctx.loans loans with installments and payments."""
    _staff(ctx)
    postgres = ctx.backend == "postgresql"
    gen = _Gen(ctx.today, postgres, ctx.agent_ids, seed)
    sink = _PgSink(ctx.url) if postgres else _SqliteSink(ctx)
    counts = Counts()
    for ids in _chunks(ctx.borrowers):
        sink.write("borrower", BORROWER_COLS, [gen.borrower(i) for i in ids])
        counts.borrowers += len(ids)
    for ids in _chunks(ctx.loans):
        loans, insts, pays = [], [], []
        for i in ids:
            loan, more_insts, more_pays = gen.loan(i, ctx.borrowers)
            loans.append(loan)
            insts += more_insts
            pays += more_pays
        sink.write("loan", LOAN_COLS, loans)
        sink.write("installment", INST_COLS, insts)
        sink.write("payment", PAY_COLS, pays)
        counts.loans += len(loans)
        counts.installments += len(insts)
        counts.payments += len(pays)
    sink.close(["borrower", "loan", "installment", "payment"])
    return counts


def attach(ctx: Ctx) -> bool:
    """Use the seed an earlier run left in ctx's database (--reuse): True when it is there."""
    with ctx.engine.connect() as conn:
        loans = conn.execute(text("SELECT count(*) FROM loan")).scalar_one()
        stmt = (
            select(Staff.id)
            .where(
                Staff.telegram_user_id.between(MANAGER_TELEGRAM_ID, MANAGER_TELEGRAM_ID + AGENTS)
            )
            .order_by(Staff.telegram_user_id)
        )
        ids = list(conn.scalars(stmt))
    if loans != ctx.loans or len(ids) != AGENTS + 1:
        return False
    ctx.manager_id, ctx.agent_ids = ids[0], ids[1:]
    return True


def run(ctx: Ctx) -> list:
    """Seed and report rows per second."""
    bench = Bench("seedfast", ctx.backend)
    started = time.perf_counter()
    counts = seed(ctx)
    seconds = time.perf_counter() - started
    with ctx.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM loan")).scalar_one()
    bench.say(
        "%s borrowers, %s loans, %s installments, %s payments in %.1f s",
        counts.borrowers,
        counts.loans,
        counts.installments,
        counts.payments,
        seconds,
    )
    bench.figure("rows_per_s", counts.rows / seconds, None, Goal.INFO, "rows/s")
    # The goal: a million loans in minutes; scaled to this run's size.
    per_million = seconds * 1_000_000 / max(counts.loans, 1)
    bench.figure("s_per_million_loans", per_million, 600, Goal.AT_MOST, "s")
    assert stored == counts.loans, f"{stored} loans stored, {counts.loans} generated"
    ctx.extra["seeded"] = counts
    return bench.finish()
