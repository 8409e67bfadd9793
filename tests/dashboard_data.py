"""A small agency whose dashboard figures are worked out by hand (tests of the Mini App).

today is 7 Dec 2026 in Asia/Kolkata. Two agents:
- Asha: loan 1 (10,000, due in 10 days, 1,000 paid: current, 9,000 owed) and loan 2
  (5,000, 10 days overdue: 1-30). Loan 5 is archived and counts nowhere.
- Bala: loan 3 (2,000, 45 days overdue: 31-60) and loan 4 (3,000, 100 days: 90+).
Payments, in local time: 100 on 3 Oct (loan 2), -50 reversal on 20 Nov (loan 2), 250 at
23:50 on 30 Nov (loan 3), 600 at 00:10 on 1 Dec and 400 on 7 Dec (loan 1); 999 on loan 5.
So: October 100, November 200, December 1,000 (all Asha's).
Promises resolved in December: Asha kept 1 and broke 1, Bala kept 1 (his November one is
last month's). Contacts in December: Asha 2, Bala 1.
SMS of the last 7 days: reminders delivered (1 and 2 segments) and failed 30003, a notice
undelivered 30005 and one queued, a broadcast sent (3 segments); one older delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from db.models import (
    Contact,
    ContactChannel,
    ContactOutcome,
    Loan,
    Message,
    MessageKind,
    MessageStatus,
    Payment,
    PaymentMethod,
    Promise,
    PromiseState,
    Role,
    Staff,
)
from tests.factories import make_loan, make_staff

TZ = ZoneInfo("Asia/Kolkata")
TODAY = date(2026, 12, 7)
NOW = datetime.combine(TODAY, time(15, 0), tzinfo=TZ).astimezone(UTC)


def local(day: date, hh: int = 12, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=TZ).astimezone(UTC)


@dataclass
class Agency:
    manager: Staff
    admin: Staff
    asha: Staff
    bala: Staff
    loans: list[Loan]


def _pay(session: Session, loan: Loan, amount: str, when: datetime) -> None:
    session.add(
        Payment(loan_id=loan.id, amount=Decimal(amount), method=PaymentMethod.CASH, paid_at=when)
    )


def _promise(session: Session, loan: Loan, state: PromiseState, resolved: datetime) -> None:
    session.add(
        Promise(
            loan_id=loan.id,
            amount=Decimal("100"),
            promised_date=resolved.date(),
            state=state,
            resolved_at=resolved,
        )
    )


def _contact(session: Session, loan: Loan, when: datetime) -> None:
    session.add(
        Contact(
            loan_id=loan.id,
            channel=ContactChannel.CALL,
            outcome=ContactOutcome.NO_ANSWER,
            created_at=when,
        )
    )


def _sms(session: Session, n: int, kind: MessageKind, status: MessageStatus, **extra) -> None:
    session.add(
        Message(
            to_phone=f"+91990000{n:04d}",
            body="hello",
            kind=kind,
            idempotency_key=f"dash-{n}",
            status=status,
            created_at=extra.pop("created_at", NOW - timedelta(days=1)),
            **extra,
        )
    )


def _loans(session: Session, asha: Staff, bala: Staff) -> list[Loan]:
    specs = [(asha, "10000", 10), (asha, "5000", -10), (bala, "2000", -45), (bala, "3000", -100)]
    specs.append((asha, "7000", 5))
    loans = [
        make_loan(
            session,
            agent=agent,
            principal=Decimal(amount),
            first_due=TODAY + timedelta(days=days),
            loan_number=f"D-{i + 1:03d}",
        )
        for i, (agent, amount, days) in enumerate(specs)
    ]
    loans[0].amount_paid = Decimal("1000")
    loans[4].archived_at = NOW - timedelta(days=1)
    return loans


def _payments(session: Session, loans: list[Loan]) -> None:
    l1, l2, l3, _, l5 = loans
    _pay(session, l2, "100", local(date(2026, 10, 3)))
    _pay(session, l2, "-50", local(date(2026, 11, 20)))
    _pay(session, l3, "250", local(date(2026, 11, 30), 23, 50))
    _pay(session, l1, "600", local(date(2026, 12, 1), 0, 10))
    _pay(session, l1, "400", local(date(2026, 12, 7), 9))
    _pay(session, l5, "999", local(date(2026, 12, 3)))


def _activity(session: Session, loans: list[Loan]) -> None:
    l1, l2, l3, l4, l5 = loans
    _promise(session, l1, PromiseState.KEPT, local(date(2026, 12, 5)))
    _promise(session, l2, PromiseState.BROKEN, local(date(2026, 12, 6)))
    _promise(session, l3, PromiseState.KEPT, local(date(2026, 11, 28)))
    _promise(session, l4, PromiseState.KEPT, local(date(2026, 12, 2)))
    _promise(session, l5, PromiseState.KEPT, local(date(2026, 12, 2)))
    for loan, day in ((l1, 2), (l1, 4), (l3, 5), (l5, 5)):
        _contact(session, loan, local(date(2026, 12, day)))
    _contact(session, l3, local(date(2026, 11, 5)))


def _messages(session: Session) -> None:
    R, N, B = MessageKind.REMINDER, MessageKind.NOTICE, MessageKind.BROADCAST
    _sms(session, 1, R, MessageStatus.DELIVERED, segments=1)
    _sms(session, 2, R, MessageStatus.DELIVERED, segments=2)
    # As the worker records failures: its words, and the provider's code as it came.
    unreachable = "unreachable handset (switched off or out of coverage)"
    _sms(session, 3, R, MessageStatus.FAILED, error_code="30003", failure_reason=unreachable)
    unknown = "unknown number (not in service)"
    _sms(
        session,
        4,
        N,
        MessageStatus.UNDELIVERED,
        segments=1,
        error_code="30005",
        failure_reason=unknown,
    )
    _sms(session, 5, N, MessageStatus.QUEUED)
    _sms(session, 6, B, MessageStatus.SENT, segments=3)
    _sms(session, 7, R, MessageStatus.DELIVERED, segments=1, created_at=NOW - timedelta(days=10))


def make_agency(session: Session, *, telegram_ids: tuple[int, ...] | None = None) -> Agency:
    ids = telegram_ids or (None, None, None, None)
    manager = make_staff(session, role=Role.MANAGER, name="Meera", telegram_user_id=ids[0])
    admin = make_staff(session, role=Role.ADMIN, name="Arun", telegram_user_id=ids[1])
    asha = make_staff(session, role=Role.AGENT, name="Asha", telegram_user_id=ids[2])
    bala = make_staff(session, role=Role.AGENT, name="Bala", telegram_user_id=ids[3])
    loans = _loans(session, asha, bala)
    _payments(session, loans)
    _activity(session, loans)
    _messages(session)
    session.flush()
    return Agency(manager, admin, asha, bala, loans)
