"""The planner (reminders queued once per loan, rule and due date) and the daily job."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import partial

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from db import clock, sms_text
from db.agency import agency_of
from db.config import LateFeeKind
from db.models import (
    Frequency,
    Installment,
    LoanState,
    Message,
    MessageEvent,
    MessageKind,
    MessageStatus,
    Money,
    Promise,
    PromiseState,
    Suppression,
)
from db.money import format_money
from db.sms_window import window_start, zone
from scheduler import jobs
from tests.factories import make_borrower, make_loan

TODAY = date(2030, 1, 15)


def _reminders(session: Session, loan_ids: list[int] | None = None) -> list[Message]:
    stmt = select(Message).where(Message.kind == MessageKind.REMINDER).order_by(Message.id)
    if loan_ids is not None:
        stmt = stmt.where(Message.loan_id.in_(loan_ids))
    return list(session.scalars(stmt))


def _loan_due(session: Session, days_from_today: int, **kw):
    return make_loan(session, agent=None, first_due=TODAY + timedelta(days=days_from_today), **kw)


def test_each_rule_picks_the_installments_due_its_number_of_days_away(session, settings):
    loans = {d: _loan_due(session, d) for d in (3, 0, -1, -7, -14, -30, -4, 5)}
    queued = jobs.plan_reminders(session, today=TODAY, settings=settings)
    got = {m.loan_id: m.rule for m in _reminders(session, [ln.id for ln in loans.values()])}
    expected = {3: "due-3", 0: "due+0", -1: "due+1", -7: "due+7", -14: "due+14", -30: "due+30"}
    assert got == {loans[d].id: rule for d, rule in expected.items()}
    assert queued >= len(expected)


def test_the_message_is_rendered_keyed_and_timed(session, settings):
    borrower = make_borrower(session, name="Asha Rao", timezone="America/New_York")
    loan = _loan_due(session, -1, borrower=borrower, principal=Decimal("1500.00"))
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    [m] = _reminders(session, [loan.id])
    assert m.idempotency_key == f"rem:{loan.id}:due+1:2030-01-14"
    assert m.to_phone == borrower.phone and m.borrower_id == borrower.id
    assert m.body.startswith("Dear Asha Rao, INR 1500.00 for loan ")
    assert "14 Jan 2030" in m.body and m.body.endswith("Reply STOP to opt out.")
    # 08:00 in New York on the planning day, and the default 48 hours to get out.
    assert m.send_after == datetime(2030, 1, 15, 13, 0, tzinfo=UTC)
    assert m.expires_at == m.send_after + timedelta(hours=48)
    assert (m.status, m.attempts) == (MessageStatus.QUEUED, 0)
    events = session.scalars(select(MessageEvent).where(MessageEvent.message_id == m.id)).all()
    assert [(e.status, e.source, e.detail) for e in events] == [("queued", "planner", "due+1")]


def test_two_time_zones_get_their_own_morning(session, settings):
    india = _loan_due(session, 0, borrower=make_borrower(session, timezone="Asia/Kolkata"))
    usa = _loan_due(session, 0, borrower=make_borrower(session, timezone="America/New_York"))
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    by_loan = {m.loan_id: m.send_after for m in _reminders(session, [india.id, usa.id])}
    assert by_loan[india.id] == datetime(2030, 1, 15, 2, 30, tzinfo=UTC)
    assert by_loan[usa.id] == datetime(2030, 1, 15, 13, 0, tzinfo=UTC)


def test_amount_due_is_what_is_left_of_the_installment(session, settings):
    loan = _loan_due(session, 0, principal=Decimal("3000.00"), count=3)
    inst = session.scalars(select(Installment).where(Installment.loan_id == loan.id)).first()
    inst.amount_paid = Decimal("400.00")
    loan.amount_paid = Decimal("400.00")
    session.flush()
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    [m] = _reminders(session, [loan.id])
    assert "INR 600.00 for loan" in m.body


def test_closed_loans_settled_installments_and_opted_out_borrowers_get_none(session, settings):
    closed = _loan_due(session, 0)
    closed.state = LoanState.CLOSED
    settled = _loan_due(session, 0)
    for inst in settled.installments:
        inst.amount_paid = inst.principal_due + inst.interest_due
    opted = _loan_due(session, 0, borrower=make_borrower(session, opted_out_at=datetime.now(UTC)))
    dead = _loan_due(session, 0)
    session.add(Suppression(phone=dead.borrower.phone, reason="landline"))
    session.flush()
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    assert _reminders(session, [closed.id, settled.id, opted.id, dead.id]) == []


def test_an_unpaid_late_fee_keeps_the_reminders_going(session, settings):
    loan = _loan_due(session, -7)
    for inst in loan.installments:
        inst.amount_paid = inst.principal_due + inst.interest_due
        inst.fee_due = Decimal("100.00")
    session.flush()
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    [m] = _reminders(session, [loan.id])
    assert m.body.startswith("Dear ") and "INR 100.00 for loan" in m.body


def test_planning_twice_queues_nothing_new(session, settings):
    loans = [_loan_due(session, d) for d in (0, 0, 0, 0, -1, -1, -7, 3, 3, 3)]
    first = jobs.plan_reminders(session, today=TODAY, settings=settings)
    assert len(_reminders(session, [ln.id for ln in loans])) == 10
    assert first >= 10
    assert jobs.plan_reminders(session, today=TODAY, settings=settings) == 0
    assert len(_reminders(session, [ln.id for ln in loans])) == 10


def test_a_restarted_planner_queues_nothing_new(committed, settings):
    with committed.begin() as s:
        ids = [_loan_due(s, d).id for d in (0, -1, 3)]
    with committed.begin() as s:
        assert jobs.plan_reminders(s, today=TODAY, settings=settings) == 3
    with committed.begin() as s:  # a new process: nothing remembered but the database
        assert jobs.plan_reminders(s, today=TODAY, settings=settings) == 0
        assert len(_reminders(s, ids)) == 3


def test_two_planners_at_once_queue_each_reminder_once(committed, settings):
    with committed.begin() as s:
        ids = [_loan_due(s, d).id for d in [0] * 40 + [-1] * 40]
    results: list[int] = []
    barrier = threading.Barrier(2)

    def plan() -> None:
        barrier.wait()
        with committed.begin() as s:
            results.append(jobs.plan_reminders(s, today=TODAY, settings=settings))

    threads = [threading.Thread(target=plan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with committed() as s:
        mine = _reminders(s, ids)
        keys = [m.idempotency_key for m in mine]
        events = s.scalar(
            select(func.count()).where(MessageEvent.message_id.in_([m.id for m in mine]))
        )
    assert sum(results) == 80
    assert len(keys) == len(set(keys)) == 80
    assert events == 80


def test_a_new_due_date_is_a_new_reminder(session, settings):
    loan = _loan_due(session, 0, count=2, frequency=Frequency.DAILY)
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    jobs.plan_reminders(session, today=TODAY + timedelta(days=1), settings=settings)
    keys = sorted(m.idempotency_key for m in _reminders(session, [loan.id]))
    assert keys == [
        f"rem:{loan.id}:due+0:2030-01-15",
        f"rem:{loan.id}:due+0:2030-01-16",
        f"rem:{loan.id}:due+1:2030-01-15",
    ]


# --- reminders missed while the worker was down ---------------------------------------------


def _clock_at(moment: datetime) -> None:
    clock.reset()
    clock.advance(moment - clock.utcnow())


def _opens(day: date, tz: str | None, settings) -> datetime:
    return window_start(day, zone(tz, settings.agency_timezone), settings.allowed_window[0])


def test_a_day_the_worker_missed_is_planned_the_next_day_with_its_own_timing(session, settings):
    borrower = make_borrower(session, timezone="America/New_York")
    loan = _loan_due(session, -7, borrower=borrower)  # its due+7 should have gone TODAY
    tomorrow = TODAY + timedelta(days=1)
    _clock_at(datetime(2030, 1, 16, 6, 0, tzinfo=UTC))
    assert jobs.plan_reminders(session, today=tomorrow, settings=settings) >= 1
    [m] = _reminders(session, [loan.id])
    assert (m.rule, m.idempotency_key) == ("due+7", f"rem:{loan.id}:due+7:2030-01-08")
    assert "was due on 08 Jan 2030" in m.body
    assert m.send_after == _opens(TODAY, "America/New_York", settings)
    assert m.send_after == datetime(2030, 1, 15, 13, 0, tzinfo=UTC)
    assert m.expires_at == m.send_after + timedelta(hours=48)
    assert jobs.plan_reminders(session, today=tomorrow, settings=settings) == 0
    assert len(_reminders(session, [loan.id])) == 1


def test_a_reminder_three_days_late_is_not_planned(session, settings):
    loan = _loan_due(session, -10)  # its due+7 should have gone three days ago
    _clock_at(datetime(2030, 1, 15, 6, 0, tzinfo=UTC))
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    assert _reminders(session, [loan.id]) == []


@pytest.mark.parametrize(("hour", "planned"), [(14, True), (15, False)])
def test_a_late_reminder_already_past_its_expiry_is_not_planned(session, settings, hour, planned):
    short = settings.model_copy(update={"sms_expiry_hours": 36})
    loan = _loan_due(session, -8)  # due+7 yesterday: opened 02:30 UTC, expires 14:30 today
    _clock_at(datetime(2030, 1, 15, hour, 0, tzinfo=UTC))
    jobs.plan_reminders(session, today=TODAY, settings=short)
    got = _reminders(session, [loan.id])
    assert [m.expires_at for m in got] == (
        [datetime(2030, 1, 15, 14, 30, tzinfo=UTC)] if planned else []
    )


def test_the_on_the_day_reminder_is_never_planned_a_day_late(session, settings):
    loan = _loan_due(session, -1)  # due+0 yesterday says "due today": due+1 goes instead
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    assert [m.rule for m in _reminders(session, [loan.id])] == ["due+1"]


def test_planning_day_after_day_with_a_day_missed_queues_each_reminder_once(session, settings):
    loans = [_loan_due(session, off) for off in range(-4, 8)]
    days = [TODAY + timedelta(days=n) for n in range(-2, 9) if n != 3]  # down on TODAY+3
    queued = 0
    for day in days:
        _clock_at(datetime.combine(day, time(12, 0), tzinfo=UTC))
        queued += jobs.plan_reminders(session, today=day, settings=settings)
    mine = _reminders(session, [ln.id for ln in loans])
    expected = {
        jobs.reminder_key(ln.id, sms_text.rule_name(d), ln.installments[0].due_date)
        for ln in loans
        for d in settings.reminder_days
        if any(
            0 <= (day - ln.installments[0].due_date).days - d <= jobs.late_days(d, settings)
            for day in days
        )
    }
    keys = [m.idempotency_key for m in mine]
    assert len(keys) == len(set(keys)) == queued and set(keys) == expected
    for m in mine:  # each row its own due date and day, in one statement with others
        due, days = date.fromisoformat(m.idempotency_key[-10:]), int(m.rule.removeprefix("due"))
        assert sms_text.sms_date(due) in m.body
        assert m.send_after == _opens(due + timedelta(days=days), None, settings)
    caught_up = {m.rule for m in mine if m.send_after.date() == TODAY + timedelta(days=3)}
    assert caught_up and "due+0" not in caught_up
    events = session.scalar(
        select(func.count()).where(MessageEvent.message_id.in_([m.id for m in mine]))
    )
    assert events == len(keys)


@pytest.fixture
def fee_settings(settings):
    return settings.model_copy(
        update={"late_fee_kind": LateFeeKind.FIXED, "late_fee_amount": Decimal("100.00")}
    )


def test_daily_charges_late_fees_and_breaks_promises(session, fee_settings):
    late = _loan_due(session, -10)
    promised = _loan_due(session, 10)
    promise = Promise(
        loan_id=promised.id,
        amount=Decimal("500.00"),
        promised_date=TODAY - timedelta(days=1),
        state=PromiseState.OPEN,
        paid_baseline=Decimal("0"),
    )
    session.add(promise)
    session.flush()
    report = jobs.daily(session, today=TODAY, settings=fee_settings)
    assert report.late_fees >= 1 and report.promises_broken >= 1
    session.refresh(late)
    session.refresh(promise)
    assert late.fees_charged == Decimal("100.00")
    assert promise.state is PromiseState.BROKEN


def test_the_agency_phone_signs_the_reminder(session, settings):
    signed = settings.model_copy(update={"agency_name": "Acme", "agency_phone": "+919812345678"})
    loan = _loan_due(session, 0)
    jobs.plan_reminders(session, today=TODAY, settings=signed)
    [m] = _reminders(session, [loan.id])
    assert "- Acme +919812345678. Reply STOP" in m.body


# --- the bodies rendered in SQL are the ones sms_text.render makes ---------------------------

# Names, zones and money that a naive SQL rendering would get wrong.
TRICKY = [
    ("O'Brien d'Souza", "America/New_York", "0.05", "0", "0"),
    ("Zoë Ñúñez 李小龍 🙂", "Asia/Kathmandu", "1234567.89", "0", "0"),
    ('Quote "Q" {name} 100% \\n', "Mars/Olympus", "999999999.99", "0.01", "0"),
    ("Half Up", "Pacific/Chatham", "100.50", "0.25", "0"),
    # Overpaid with a fee left: what is owed is negative, and under 1 in a whole currency.
    ("Over Paid", None, "100.00", "100.40", "0.10"),
    ("Same Zone", "Asia/Kolkata", "0.01", "0", "12.35"),
]


def _tricky_loans(session: Session) -> list[int]:
    ids = []
    for n, (name, tz, principal, paid, fee) in enumerate(TRICKY):
        for days in (-3, 0, 7):
            borrower = make_borrower(session, name=name, timezone=tz)
            loan = _loan_due(
                session,
                -days,
                borrower=borrower,
                principal=Decimal(principal),
                loan_number=f"L'{n}/ü-{days}",
            )
            inst = loan.installments[0]
            inst.amount_paid, inst.fee_due = Decimal(paid), Decimal(fee)
            loan.amount_paid, loan.fees_charged = Decimal(paid), Decimal(fee)
            ids.append(loan.id)
    session.flush()
    return ids


def _rendered_in_python(session: Session, m: Message, settings) -> tuple[str, datetime]:
    """The body and send_after as the planner made them in Python, from the stored values."""
    days = int(m.rule.removeprefix("due"))
    due = TODAY - timedelta(days=days)
    inst = session.scalars(
        select(Installment).where(Installment.loan_id == m.loan_id, Installment.due_date == due)
    ).one()
    loan, borrower = inst.loan, inst.loan.borrower
    owed = inst.principal_due + inst.interest_due + inst.fee_due - inst.amount_paid - inst.fee_paid
    money = partial(format_money, agency=agency_of(settings), plain=True)
    body = sms_text.render(
        sms_text.template_for(days),
        {
            "name": borrower.name,
            "amount_due": money(owed),
            "loan_number": loan.loan_number,
            "outstanding": money(loan.amount_payable + loan.fees_charged - loan.amount_paid),
            "due_date": sms_text.sms_date(due),
            "agency": "Vasooli +919800000000",
        },
    )
    tz = zone(borrower.timezone, settings.agency_timezone)
    opens = window_start(TODAY, tz, settings.allowed_window[0]).astimezone(UTC)
    return body, opens


@pytest.mark.parametrize("currency", ["INR", "JPY", "KWD"])  # 2, 0 and 3 minor units
def test_bodies_rendered_in_sql_match_sms_text_render(session, settings, currency):
    settings = settings.model_copy(update={"currency": currency, "agency_phone": "+919800000000"})
    ids = _tricky_loans(session)
    jobs.plan_reminders(session, today=TODAY, settings=settings)
    session.expire_all()  # compare with what the database holds, as the old planner read it
    messages = _reminders(session, ids)
    assert len(messages) == len(ids)
    for m in messages:
        body, opens = _rendered_in_python(session, m, settings)
        assert m.body == body
        assert (m.send_after, m.expires_at) == (opens, opens + timedelta(hours=48))
    bodies = " | ".join(m.body for m in messages)
    assert "Dear O'Brien d'Souza, " in bodies and "Zoë Ñúñez 李小龍 🙂" in bodies
    assert f"{currency} -0" in bodies  # the overpaid one


# Up to five signed money columns, as large as Numeric(14, 2) holds.
_MONEY = st.decimals(min_value=0, max_value=Decimal("999999999999.99"), places=2)
_TERMS = st.lists(st.tuples(st.sampled_from([1, -1]), _MONEY), min_size=1, max_size=5)


@settings_(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(terms=_TERMS, currency=st.sampled_from(["INR", "JPY", "KWD"]))
def test_amounts_in_sql_match_money_for_sms(session, settings, terms, currency):
    settings = settings.model_copy(update={"currency": currency})
    dialect = session.get_bind().dialect.name
    columns = [(sign, literal(value, Money)) for sign, value in terms]
    agency = agency_of(settings)
    got = session.scalar(select(jobs.amount_sql(columns, dialect, agency)))
    total = sum((sign * value for sign, value in terms), Decimal("0.00"))
    assert got == format_money(total, agency, plain=True)
