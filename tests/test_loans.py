"""Loans service: add, get, edit, reassign, close, write off, delete, and who may do each."""

from __future__ import annotations

import re
import secrets
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from db.models import (
    AuditEvent,
    Borrower,
    InterestMethod,
    Loan,
    LoanEvent,
    LoanEventKind,
    LoanState,
    Payment,
    PaymentMethod,
    Role,
    Staff,
    StaffState,
)
from db.services.audit.write import AuditAction
from db.services.collection import ledger
from db.services.errors import AccessDenied, Conflict, InvalidInput, NotFound
from db.services.loans.add import (
    EditableField,
    add_loan,
    close_loan,
    edit_loan,
    find_borrower,
    get_loan,
    get_loan_by_id,
    reassign_loan,
    write_off_loan,
)
from tests.factories import actor, make_borrower, make_loan, make_staff

PHONE = "+91 98765 43210"


def new_loan(session, who, today, **kw):
    args = {
        "phone": PHONE,
        "name": "Ravi Kumar",
        "address": "12 MG Road",
        "principal": Decimal("12000"),
        "first_due": today + timedelta(days=30),
        "today": today,
        **kw,
    }
    return add_loan(session, actor=actor(who), **args)


def events(session, loan_id, kind):
    stmt = select(LoanEvent).where(LoanEvent.loan_id == loan_id, LoanEvent.kind == kind)
    stmt = stmt.order_by(LoanEvent.id)
    return session.scalars(stmt).all()


def audits(session, action, target_id):
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.action == action.value, AuditEvent.target_id == str(target_id))
        .order_by(AuditEvent.id)
    )
    return session.scalars(stmt).all()


def pay_everything(session, loan_id):
    """Settle every installment directly and record one payment row (payments.py is elsewhere)."""
    loan = session.get(Loan, loan_id)
    for inst in loan.installments:
        inst.amount_paid = inst.principal_due + inst.interest_due
    session.add(Payment(loan_id=loan.id, amount=loan.amount_payable, method=PaymentMethod.CASH))
    ledger.refresh(loan)
    session.flush()


# -- add --------------------------------------------------------------------------------------


def test_add_loan_writes_loan_schedule_event_and_audit(session, agent_a, today):
    view = new_loan(
        session, agent_a, today, count=3, method=InterestMethod.FLAT, rate=Decimal("24")
    )
    assert re.fullmatch(r"LN-[0-9A-HJKMNP-TV-Z]{6}", view.loan_number)
    assert view.version == 1 and view.state is LoanState.ACTIVE
    assert view.agent_id == agent_a.id and view.agent_name == agent_a.name
    assert view.borrower_phone == "+919876543210" and view.borrower_address == "12 MG Road"
    assert view.amount_payable == Decimal("12720.00")  # 24 % a year flat for 3 months
    assert view.outstanding == view.amount_payable and view.installments_paid == 0
    assert view.next_due_date == today + timedelta(days=30)
    assert view.next_due_amount == Decimal("4240.00")
    loan = session.get(Loan, view.id)
    assert [i.seq for i in loan.installments] == [1, 2, 3]
    assert loan.created_by_id == agent_a.id
    [created] = events(session, view.id, LoanEventKind.CREATED)
    assert created.after["loan_number"] == view.loan_number and created.staff_id == agent_a.id
    [row] = audits(session, AuditAction.LOAN_CREATED, view.id)
    assert row.details["principal"] == "12000" and row.staff_id == agent_a.id


def test_phone_formats_reuse_one_borrower(session, agent_a, today):
    ids = {
        new_loan(session, agent_a, today, phone=p).borrower_id
        for p in ("+91 98765 43210", "09876543210", "9876543210")
    }
    assert len(ids) == 1
    found = find_borrower(session, phone="098765-43210", region="IN")
    assert found is not None and found.id in ids and found.loans_count == 3
    assert found.name == "Ravi Kumar" and not found.opted_out


def test_find_borrower_unknown_phone_is_none(session):
    assert find_borrower(session, phone="+91 91234 56789", region="IN") is None


def test_existing_borrower_keeps_their_name(session, agent_a, today):
    first = new_loan(session, agent_a, today)
    second = new_loan(session, agent_a, today, name="Ravi K. Sharma", address=None)
    assert second.borrower_id == first.borrower_id
    assert second.borrower_name == "Ravi Kumar"
    [created] = events(session, second.id, LoanEventKind.CREATED)
    assert "Ravi K. Sharma" in created.note


def test_html_like_names_are_stored_as_text(session, agent_a, today):
    view = new_loan(session, agent_a, today, name="<script>alert(1)</script>")
    assert view.borrower_name == "<script>alert(1)</script>"
    assert session.get(Borrower, view.borrower_id).name_key == "<script>alert(1)</script>"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"phone": "12345"}, "phone_invalid"),
        ({"phone": "call me"}, "phone_format"),
        ({"name": "x"}, "name_short"),
        ({"name": "   "}, "text_empty"),
        ({"name": "Ravi\x00"}, "text_control"),
        ({"address": "a" * 301}, "text_long"),
        ({"principal": Decimal("0")}, "amount_not_positive"),
        ({"principal": Decimal("-5")}, "amount_not_positive"),
        ({"principal": Decimal("100000000.01")}, "amount_too_large"),
        ({"principal": Decimal("12.345")}, "amount_decimals"),
        ({"principal": Decimal("NaN")}, "amount_not_positive"),
        ({"first_due": "yesterday"}, "date_past"),
        ({"count": 0}, "int_range"),
        ({"count": 361}, "int_range"),
        ({"rate": Decimal("101"), "method": InterestMethod.FLAT}, "rate_range"),
        ({"rate": Decimal("-1"), "method": InterestMethod.FLAT}, "rate_range"),
        ({"rate": Decimal("12")}, "rate_method"),
        ({"principal": Decimal("0.05"), "count": 12}, "installments_too_many"),
        ({"loan_number": "a b"}, "loan_number_format"),
    ],
)
def test_add_loan_refusals_change_nothing(session, agent_a, today, changes, code):
    if changes.get("first_due") == "yesterday":
        changes["first_due"] = today - timedelta(days=1)
    before = session.scalar(select(func.count(Loan.id)))
    with pytest.raises(InvalidInput) as err:
        new_loan(session, agent_a, today, **changes)
    assert err.value.code == code
    assert session.scalar(select(func.count(Loan.id))) == before
    assert session.scalar(select(Borrower.id).where(Borrower.phone == "+919876543210")) is None


def test_given_loan_number_is_upper_case_and_unique(session, agent_a, today):
    view = new_loan(session, agent_a, today, loan_number="ln-ab-77")
    assert view.loan_number == "LN-AB-77"
    found = get_loan(session, actor=actor(agent_a), loan_number="Ln-Ab-77", today=today)
    assert found.id == view.id
    with pytest.raises(Conflict, match="Loan number LN-AB-77 is already in use"):
        new_loan(session, agent_a, today, phone="+91 91234 56789", loan_number="LN-AB-77")
    assert find_borrower(session, phone="+91 91234 56789", region="IN") is None


def test_generated_numbers_are_unique(session, agent_a, today):
    numbers = {new_loan(session, agent_a, today).loan_number for _ in range(25)}
    assert len(numbers) == 25


def test_generated_number_retries_after_a_collision(session, agent_a, today, monkeypatch):
    make_loan(session, agent=agent_a, loan_number="LN-000000")
    picks = iter("0" * 6 + "7" * 6)
    monkeypatch.setattr(secrets, "choice", lambda _alphabet: next(picks))
    view = new_loan(session, agent_a, today)
    assert view.loan_number == "LN-777777"
    assert session.scalar(select(func.count(Loan.id)).where(Loan.loan_number == "LN-777777")) == 1
    assert len(session.get(Loan, view.id).installments) == 1


def test_two_sessions_racing_for_one_number_and_phone(committed, monkeypatch, today):
    """Real concurrent transactions: the second waits, hits the unique keys, retries."""
    with committed() as setup:
        agent_id = make_staff(setup, role=Role.AGENT).id
        setup.commit()
    local = threading.local()
    monkeypatch.setattr(secrets, "choice", lambda _alphabet: next(local.picks))
    results: dict[str, object] = {}

    def second() -> None:
        local.picks = iter("0" * 6 + "2" * 6)
        try:
            with committed() as s2:
                view = new_loan(s2, s2.get(Staff, agent_id), today, name="Other Name")
                s2.commit()
                results["second"] = view
        except Exception as exc:  # surfaced by the assertion below
            results["error"] = exc

    local.picks = iter("0" * 6)
    with committed() as s1:
        first = new_loan(s1, s1.get(Staff, agent_id), today)
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)  # the second transaction is now waiting on our locks
        s1.commit()
    thread.join(30)
    assert "error" not in results, results.get("error")
    second_view = results["second"]
    assert (first.loan_number, second_view.loan_number) == ("LN-000000", "LN-222222")
    assert second_view.borrower_id == first.borrower_id
    assert second_view.borrower_name == "Ravi Kumar"


def test_agent_always_holds_their_own_loans(session, agent_a, agent_b, today):
    assert new_loan(session, agent_a, today).agent_id == agent_a.id
    with pytest.raises(AccessDenied):
        new_loan(session, agent_a, today, agent_id=agent_b.id)


def test_manager_may_assign_to_an_active_agent(session, manager, agent_b, admin, today):
    assert new_loan(session, manager, today, agent_id=agent_b.id).agent_id == agent_b.id
    assert new_loan(session, manager, today).agent_id == manager.id
    assert new_loan(session, admin, today).agent_id is None
    disabled = make_staff(session, role=Role.AGENT, state=StaffState.DISABLED)
    for bad in (disabled.id, admin.id, 987654321):
        with pytest.raises(InvalidInput) as err:
            new_loan(session, manager, today, agent_id=bad)
        assert err.value.code == "agent_invalid"


# -- get --------------------------------------------------------------------------------------


def test_get_loan_and_by_id(session, agent_a, today):
    loan = make_loan(session, agent=agent_a, loan_number="T-GET-1")
    view = get_loan(session, actor=actor(agent_a), loan_number=" t-get-1 ", today=today)
    assert view.id == loan.id and view.open_promise is None and view.last_contact is None
    assert get_loan_by_id(session, actor=actor(agent_a), loan_id=loan.id, today=today) == view
    with pytest.raises(NotFound, match="No loan T-NOPE found"):
        get_loan(session, actor=actor(agent_a), loan_number="T-NOPE", today=today)
    with pytest.raises(NotFound):
        get_loan_by_id(session, actor=actor(agent_a), loan_id=loan.id + 10_000, today=today)


def test_other_agents_loan_is_not_found(session, agent_a, agent_b, manager, today):
    loan = make_loan(session, agent=agent_a, loan_number="T-ISO-1")
    b = actor(agent_b)
    calls = [
        lambda: get_loan(session, actor=b, loan_number="T-ISO-1", today=today),
        lambda: get_loan_by_id(session, actor=b, loan_id=loan.id, today=today),
        lambda: edit_loan(
            session,
            actor=b,
            loan_number="T-ISO-1",
            field=EditableField.BORROWER_ADDRESS,
            value="x y z",
            expected_version=None,
            today=today,
        ),
        lambda: close_loan(
            session, actor=b, loan_number="T-ISO-1", expected_version=None, today=today
        ),
    ]
    for call in calls:
        with pytest.raises(NotFound, match=r"^No loan (T-ISO-1 )?found\.$"):
            call()
    assert get_loan(session, actor=actor(manager), loan_number="T-ISO-1", today=today).id == loan.id
    assert session.get(Loan, loan.id).version == 1


# -- edit -------------------------------------------------------------------------------------


def edit(session, who, number, field, value, today, version=None):
    return edit_loan(
        session,
        actor=actor(who),
        loan_number=number,
        field=field,
        value=value,
        expected_version=version,
        today=today,
    )


def test_edit_borrower_fields(session, agent_a, today):
    loan = make_loan(session, agent=agent_a, loan_number="T-ED-1")
    original = loan.borrower.name
    result = edit(session, agent_a, "T-ED-1", EditableField.BORROWER_NAME, "  Sita   Devi ", today)
    assert (result.after, result.loan.borrower_name, result.loan.version) == (
        "Sita Devi",
        "Sita Devi",
        2,
    )
    assert session.get(Borrower, loan.borrower_id).name_key == "sita devi"
    result = edit(session, agent_a, "T-ED-1", EditableField.BORROWER_PHONE, "09123456789", today)
    assert result.after == "+919123456789" and result.loan.borrower_phone == "+919123456789"
    result = edit(session, agent_a, "T-ED-1", EditableField.BORROWER_ADDRESS, "5 Park St", today)
    assert result.before == "" and result.after == "5 Park St"
    edited = events(session, loan.id, LoanEventKind.EDITED)
    assert [e.after for e in edited] == [
        {"borrower_name": "Sita Devi"},
        {"borrower_phone": "+919123456789"},
        {"borrower_address": "5 Park St"},
    ]
    rows = audits(session, AuditAction.LOAN_EDITED, loan.id)
    assert len(rows) == 3
    assert rows[0].details["borrower_name"] == "Sita Devi"
    assert rows[0].details["borrower_name_before"] == original
    assert session.get(Loan, loan.id).version == 4


def test_edit_phone_taken_by_another_borrower(session, agent_a, today):
    make_borrower(session, phone="+919123456789")
    make_loan(session, agent=agent_a, loan_number="T-ED-2")
    with pytest.raises(Conflict) as err:
        edit(session, agent_a, "T-ED-2", EditableField.BORROWER_PHONE, "9123456789", today)
    assert err.value.code == "phone_taken"


def test_edit_next_due_date_moves_every_unsettled_installment(session, agent_a, today):
    loan = make_loan(
        session, agent=agent_a, loan_number="T-ED-3", count=3, first_due=today - timedelta(days=5)
    )
    first = loan.installments[0]
    first.amount_paid = first.principal_due  # settled: stays where it is
    ledger.refresh(loan)
    old = [i.due_date for i in loan.installments]
    target = today + timedelta(days=7)
    result = edit(
        session, agent_a, "T-ED-3", EditableField.NEXT_DUE_DATE, target.isoformat(), today
    )
    shift = target - old[1]
    assert [i.due_date for i in loan.installments] == [old[0], old[1] + shift, old[2] + shift]
    assert result.loan.next_due_date == target and loan.next_due_date == target
    assert result.before == str(old[1]) and result.after == str(target)


def test_edit_next_due_date_refuses_past(session, agent_a, today):
    make_loan(session, agent=agent_a, loan_number="T-ED-4")
    with pytest.raises(InvalidInput) as err:
        edit(session, agent_a, "T-ED-4", EditableField.NEXT_DUE_DATE, "01/01/2020", today)
    assert err.value.code == "date_past"


def test_edit_principal_rebuilds_schedule_until_paid(session, agent_a, today):
    loan = make_loan(session, agent=agent_a, loan_number="T-ED-5", count=4)
    result = edit(session, agent_a, "T-ED-5", EditableField.PRINCIPAL, "20,000", today)
    assert result.loan.principal == Decimal("20000.00") and result.loan.amount_payable == 20000
    assert [i.principal_due for i in loan.installments] == [Decimal("5000.00")] * 4
    session.add(Payment(loan_id=loan.id, amount=Decimal("100"), method=PaymentMethod.CASH))
    session.flush()
    with pytest.raises(Conflict) as err:
        edit(session, agent_a, "T-ED-5", EditableField.PRINCIPAL, "30000", today)
    assert err.value.code == "has_payments"


def test_edit_refusals(session, agent_a, today):
    loan = make_loan(session, agent=agent_a, loan_number="T-ED-6")
    name = loan.borrower.name
    with pytest.raises(InvalidInput) as err:
        edit(session, agent_a, "T-ED-6", EditableField.BORROWER_NAME, f" {name} ", today)
    assert err.value.code == "unchanged"
    with pytest.raises(InvalidInput) as err:
        edit(session, agent_a, "T-ED-6", EditableField.PRINCIPAL, "10000.00", today)
    assert err.value.code == "unchanged"
    with pytest.raises(Conflict, match="changed since you opened it") as err:
        edit(session, agent_a, "T-ED-6", EditableField.BORROWER_NAME, "New Name", today, version=0)
    assert err.value.code == "stale"
    assert (
        edit(
            session, agent_a, "T-ED-6", EditableField.BORROWER_NAME, "New Name", today, version=1
        ).loan.version
        == 2
    )
    loan.state = LoanState.CLOSED
    session.flush()
    with pytest.raises(Conflict) as err:
        edit(session, agent_a, "T-ED-6", EditableField.BORROWER_NAME, "Other Name", today)
    assert err.value.code == "loan_not_active"
    assert len(events(session, loan.id, LoanEventKind.EDITED)) == 1


# -- reassign, close, write off -----------------------------------------------------------------


def test_reassign_is_for_managers(session, agent_a, agent_b, manager, today):
    loan = make_loan(session, agent=agent_a, loan_number="T-RE-1")
    with pytest.raises(AccessDenied):
        reassign_loan(
            session, actor=actor(agent_a), loan_number="T-RE-1", agent_id=agent_b.id, today=today
        )
    view = reassign_loan(
        session, actor=actor(manager), loan_number="T-RE-1", agent_id=agent_b.id, today=today
    )
    assert view.agent_id == agent_b.id and view.version == 2
    [event] = events(session, loan.id, LoanEventKind.REASSIGNED)
    assert event.before == {"agent_id": agent_a.id} and event.after["agent_id"] == agent_b.id
    assert len(audits(session, AuditAction.LOAN_REASSIGNED, loan.id)) == 1
    with pytest.raises(InvalidInput):
        reassign_loan(
            session, actor=actor(manager), loan_number="T-RE-1", agent_id=agent_b.id, today=today
        )
    disabled = make_staff(session, role=Role.AGENT, state=StaffState.DISABLED)
    with pytest.raises(InvalidInput):
        reassign_loan(
            session, actor=actor(manager), loan_number="T-RE-1", agent_id=disabled.id, today=today
        )


def test_close_only_when_nothing_is_owed(session, agent_a, today):
    loan = make_loan(session, agent=agent_a, loan_number="T-CL-1")
    with pytest.raises(Conflict, match=r"still has ₹10,000.00 to pay") as err:
        close_loan(
            session, actor=actor(agent_a), loan_number="T-CL-1", expected_version=None, today=today
        )
    assert err.value.code == "not_paid"
    pay_everything(session, loan.id)
    with pytest.raises(Conflict, match="changed since"):
        close_loan(
            session, actor=actor(agent_a), loan_number="T-CL-1", expected_version=7, today=today
        )
    view = close_loan(
        session, actor=actor(agent_a), loan_number="T-CL-1", expected_version=1, today=today
    )
    assert view.state is LoanState.CLOSED and view.outstanding == 0
    assert session.get(Loan, loan.id).closed_at is not None
    assert len(events(session, loan.id, LoanEventKind.CLOSED)) == 1
    assert len(audits(session, AuditAction.LOAN_CLOSED, loan.id)) == 1
    with pytest.raises(Conflict, match="is closed"):
        close_loan(
            session, actor=actor(agent_a), loan_number="T-CL-1", expected_version=None, today=today
        )


def test_write_off_needs_a_manager_and_a_reason(session, agent_a, manager, today):
    loan = make_loan(session, agent=agent_a, loan_number="T-WO-1")

    def write_off(who, reason, version=None):
        return write_off_loan(
            session,
            actor=actor(who),
            loan_number="T-WO-1",
            reason=reason,
            expected_version=version,
            today=today,
        )

    with pytest.raises(AccessDenied):
        write_off(agent_a, "borrower moved away")
    for reason in ("", "  ", "ab"):
        with pytest.raises(InvalidInput):
            write_off(manager, reason)
    with pytest.raises(Conflict, match="changed since"):
        write_off(manager, "borrower moved away", version=5)
    view = write_off(manager, "borrower moved away", version=1)
    assert view.state is LoanState.WRITTEN_OFF and view.state_reason == "borrower moved away"
    [event] = events(session, loan.id, LoanEventKind.WRITTEN_OFF)
    assert event.note == "borrower moved away" and event.before["outstanding"] == "10000.00"
    assert len(audits(session, AuditAction.LOAN_WRITTEN_OFF, loan.id)) == 1
    with pytest.raises(Conflict, match="written off"):
        write_off(manager, "again please")


# -- delete: loans are archived now, never deleted (tests/test_archive.py) ------------------
