"""A sample loan with its schedule, payments, events and promise, as rows to write."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import zip_longest
from typing import Any

from db.models import (
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
)
from db.money import ScheduledInstallment, build_schedule, q
from db.sample.rows import Row, RowWriter
from db.sample.shapes import OVERDUE, SHAPES, Shape

ZERO = Decimal("0")


@dataclass(frozen=True, slots=True)
class _Paid:
    amount: Decimal
    paid_at: datetime


_METHODS = list(PaymentMethod)


class LoanRows(RowWriter):
    """One loan in a given shape, its children consistent with it (as ledger.refresh makes them)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shapes: Counter[Shape] = Counter()

    def plan(self) -> Row:
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
        (low, high), _ = SHAPES[shape]
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

    def pay(
        self, schedule: list[ScheduledInstallment], unpaid: int, partial: bool, created: date
    ) -> list[_Paid]:
        """What was paid on each installment before `unpaid` (and part of it), oldest first."""
        rng, last = self.rng, created
        paid: list[_Paid] = []
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

    def finish(
        self, loan: Row, shape: Shape, schedule: list[ScheduledInstallment], paid: list[_Paid]
    ) -> None:
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

    def installments(
        self, loan_id: int, schedule: list[ScheduledInstallment], paid: list[_Paid], agent_id: int
    ) -> None:
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
        after: dict[str, Any],
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
        if shape in OVERDUE and x < 0.24:
            return PromiseState.BROKEN if x < 0.12 else PromiseState.OPEN
        return PromiseState.KEPT if has_paid and x > 0.93 else None

    def promise(
        self,
        loan: Row,
        state: PromiseState,
        paid: list[_Paid],
        schedule: list[ScheduledInstallment],
    ) -> None:
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


def _back(day: date, frequency: Frequency, periods: int) -> date:
    """The due date `periods` installments before day (monthly: callers keep day <= 28)."""
    if frequency is Frequency.WEEKLY:
        return day - timedelta(weeks=periods)
    if frequency is Frequency.DAILY:
        return day - timedelta(days=periods)
    months = day.year * 12 + day.month - 1 - periods
    return date(months // 12, months % 12 + 1, day.day)
