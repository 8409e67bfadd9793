"""The daily job in batches (issue 9 item 12): short transactions, resumable, idempotent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from db.config import LateFeeKind
from db.models import Loan, LoanEvent, LoanEventKind, Promise, PromiseState
from db.services.collection import payments
from db.session import make_engine, make_session_factory
from scheduler import jobs
from tests.factories import actor, make_loan, make_staff

LOANS, BATCH = 30, 7
FEE = Decimal("100.00")


class Killed(Exception):
    """The worker dying half-way through the job."""


@pytest.fixture
def fee_settings(settings):
    return settings.model_copy(
        update={
            "late_fee_kind": LateFeeKind.FIXED,
            "late_fee_amount": FEE,
            "late_fee_grace_days": 3,
        }
    )


@pytest.fixture
def book(committed, today):
    """LOANS loans, each with an installment 10 days late and an open promise broken yesterday."""
    with committed.begin() as s:
        agent = make_staff(s)
        numbers = []
        for _ in range(LOANS):
            loan = make_loan(s, agent=agent, first_due=today - timedelta(days=10))
            s.add(
                Promise(
                    loan_id=loan.id,
                    amount=Decimal("500.00"),
                    state=PromiseState.OPEN,
                    promised_date=today - timedelta(days=1),
                    paid_baseline=Decimal("0"),
                )
            )
            numbers.append(loan.loan_number)
        agent_actor = actor(agent)
    return agent_actor, numbers


def _outcome(factory) -> tuple[list, dict, int]:
    with factory() as s:
        fees = s.execute(select(Loan.loan_number, Loan.fees_charged).order_by(Loan.id)).all()
        events = {
            kind: n
            for kind, n in s.execute(select(LoanEvent.kind, func.count()).group_by(LoanEvent.kind))
        }
        open_promises = s.scalar(
            select(func.count()).select_from(Promise).where(Promise.state == PromiseState.OPEN)
        )
    return fees, events, open_promises


def test_killed_after_two_batches_then_rerun_equals_one_clean_run(
    committed, book, today, fee_settings
):
    batches = 0

    def die_after_two() -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise Killed

    with pytest.raises(Killed):
        jobs.daily_in_batches(
            committed,
            today=today,
            settings=fee_settings,
            batch_size=BATCH,
            after_batch=die_after_two,
        )
    fees, _, _ = _outcome(committed)
    assert sum(1 for _, fee in fees if fee == FEE) == 2 * BATCH, "two batches were committed"

    again = jobs.daily_in_batches(committed, today=today, settings=fee_settings, batch_size=BATCH)
    assert again == jobs.DailyReport(late_fees=LOANS - 2 * BATCH, promises_broken=LOANS)
    fees, events, open_promises = _outcome(committed)
    assert [fee for _, fee in fees] == [FEE] * LOANS, "each loan charged once, none twice"
    assert events[LoanEventKind.LATE_FEE] == LOANS
    assert events[LoanEventKind.PROMISE_BROKEN] == LOANS and open_promises == 0
    # A third run (tomorrow's worker start-up, a second worker) changes nothing.
    assert jobs.daily_in_batches(
        committed, today=today, settings=fee_settings, batch_size=BATCH
    ) == jobs.DailyReport(0, 0)
    assert _outcome(committed) == (fees, events, 0)


def test_each_batch_commits_on_its_own_and_the_bot_writes_in_between(
    committed, book, today, fee_settings, database_url
):
    agent, numbers = book
    commits = []
    event.listen(committed, "after_commit", lambda s: commits.append(1))
    # The bot's own engine, told not to wait at all for a lock: while any transaction of the
    # job were open, its write would fail at once with "database is locked".
    bot_engine = make_engine(database_url)
    if database_url.startswith("sqlite"):
        event.listen(
            bot_engine, "connect", lambda conn, _rec: conn.execute("PRAGMA busy_timeout=0")
        )
    bot = make_session_factory(bot_engine)
    paid = []

    def bot_pays() -> None:
        with bot.begin() as s:
            payments.record_payment(
                s,
                actor=agent,
                loan_number=numbers[-1 - len(paid)],
                amount=Decimal("1"),
                today=today,
            )
        paid.append(1)

    try:
        if database_url.startswith("sqlite"):
            # The detector works: with one long transaction open, the bot's write is refused.
            with committed.begin() as held:
                held.connection()
                with pytest.raises(OperationalError, match="locked"):
                    bot_pays()
            commits.clear()
        report = jobs.daily_in_batches(
            committed, today=today, settings=fee_settings, batch_size=BATCH, after_batch=bot_pays
        )
    finally:
        bot_engine.dispose()
    per_phase = -(-LOANS // BATCH)  # 5 batches of loans, then 5 of promises
    assert report == jobs.DailyReport(late_fees=LOANS, promises_broken=LOANS)
    assert len(paid) == 2 * per_phase, "the bot wrote between every two batches"
    # One transaction per batch, and one that finds nothing left, in each phase.
    assert len(commits) == 2 * (per_phase + 1)
