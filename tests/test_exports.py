"""Exports (issue 13): content read back (CSV and XLSX), formula injection, scope, audit."""

from __future__ import annotations

import csv
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import select

from db.agency import Agency
from db.models import AuditEvent, Role
from db.services.access import Actor
from db.services.collection import payments
from db.services.errors import AccessDenied, InvalidInput
from db.services.exports.cells import FORMULA_STARTS, cell, neutralise
from db.services.exports.kinds import ExportFormat, ExportKind, Period
from db.services.exports.run import export_filename, write_export
from tests.factories import make_borrower, make_loan, make_staff

AGENCY = Agency(name="Sai Finance & Co")
EVIL = '=HYPERLINK("http://x","y")'


def _actor(staff) -> Actor:
    return Actor(staff_id=staff.id, role=staff.role, name=staff.name)


def _phone() -> str:
    return f"+9197{uuid.uuid4().int % 10**8:08d}"


def _loan(session, agent, name="Asha Devi", due=None, **kw):
    borrower = make_borrower(session, name=name, phone=_phone(), address="-2 Temple Street")
    number = f"EX-{uuid.uuid4().hex[:8].upper()}"
    return make_loan(
        session, agent=agent, borrower=borrower, loan_number=number, first_due=due, **kw
    )


def _export(session, tmp_path: Path, who, kind, fmt=ExportFormat.CSV, **kw):
    path = tmp_path / f"out.{fmt.value}"
    result = write_export(
        session, actor=_actor(who), kind=kind, fmt=fmt, path=path, agency=AGENCY, **kw
    )
    return result, path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def read_xlsx(path: Path) -> list[dict[str, object]]:
    rows = list(load_workbook(path, read_only=True).active.iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def test_loans_csv_holds_every_loan_the_manager_sees(session, tmp_path, today, manager) -> None:
    a, b = make_staff(session, role=Role.AGENT), make_staff(session, role=Role.AGENT)
    mine, theirs = _loan(session, a), _loan(session, b, principal=Decimal("2500.50"))
    result, path = _export(session, tmp_path, manager, ExportKind.LOANS, today=today)
    rows = {r["loan_number"]: r for r in read_csv(path)}
    assert {mine.loan_number, theirs.loan_number} <= set(rows)
    assert result.rows == len(rows)
    row = rows[theirs.loan_number]
    assert (row["principal"], row["outstanding"], row["currency"]) == ("2500.50", "2500.50", "INR")
    assert row["first_due_date"] == theirs.first_due_date.isoformat()
    assert (row["agent"], row["state"]) == (b.name, "active")


def test_xlsx_reads_back_as_the_csv_does(session, tmp_path, today, admin) -> None:
    loan = _loan(session, make_staff(session, role=Role.AGENT), name=EVIL)
    _, csv_path = _export(session, tmp_path, admin, ExportKind.LOANS, today=today)
    _, xlsx_path = _export(
        session, tmp_path, admin, ExportKind.LOANS, ExportFormat.XLSX, today=today
    )
    from_csv = {r["loan_number"]: r for r in read_csv(csv_path)}[loan.loan_number]
    from_xlsx = {r["loan_number"]: r for r in read_xlsx(xlsx_path)}[loan.loan_number]
    assert from_xlsx["borrower"] == from_csv["borrower"] == "'" + EVIL
    assert Decimal(str(from_xlsx["principal"])) == Decimal(from_csv["principal"])
    sheet = load_workbook(xlsx_path).active  # no cell anywhere is a formula
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


@pytest.mark.parametrize("text", ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\r=1", EVIL])
def test_formula_starts_get_an_apostrophe(session, tmp_path, today, admin, text) -> None:
    loan = _loan(session, make_staff(session, role=Role.AGENT), name=text)
    _, path = _export(session, tmp_path, admin, ExportKind.LOANS, today=today)
    row = {r["loan_number"]: r for r in read_csv(path)}[loan.loan_number]
    assert row["borrower"] == "'" + text


@given(st.text(max_size=40))
def test_neutralised_text_never_starts_a_formula(text) -> None:
    out = cell(text)
    assert not out.startswith(FORMULA_STARTS)
    assert out == text or (out == "'" + text and text.startswith(FORMULA_STARTS))
    assert neutralise(out) == out  # once is enough


def test_numbers_stay_numbers() -> None:
    assert cell(Decimal("-12.5")) == Decimal("-12.50")
    assert cell(Decimal("7"), places=0) == Decimal("7")
    assert cell(3) == 3 and cell(None) is None


def test_overdue_list_has_contact_details_and_only_overdue(session, tmp_path, today, manager):
    agent = make_staff(session, role=Role.AGENT)
    late = _loan(session, agent, due=today - timedelta(days=12))
    on_time = _loan(session, agent, due=today + timedelta(days=3))
    _, path = _export(session, tmp_path, manager, ExportKind.OVERDUE, today=today)
    rows = {r["loan_number"]: r for r in read_csv(path)}
    assert on_time.loan_number not in rows
    row = rows[late.loan_number]
    assert row["phone"] == "'" + late.borrower.phone  # +91...: neutralised like any + cell
    assert row["address"] == "'-2 Temple Street"  # a leading minus is neutralised too
    assert (row["days_overdue"], row["due_since"]) == ("12", late.next_due_date.isoformat())


def test_payments_for_a_period(session, tmp_path, today, manager) -> None:
    agent = make_staff(session, role=Role.AGENT)
    loan = _loan(session, agent)
    paid = payments.record_payment(
        session,
        actor=_actor(agent),
        loan_number=loan.loan_number,
        amount=Decimal("1234.5"),
        today=today,
    )
    this = Period.month_of(today)
    result, path = _export(
        session, tmp_path, manager, ExportKind.PAYMENTS, today=today, period=this
    )
    rows = [r for r in read_csv(path) if r["loan_number"] == loan.loan_number]
    assert [(r["amount"], r["paid_on"], r["method"]) for r in rows] == [
        ("1234.50", today.isoformat(), "cash")
    ]
    assert result.period == this and str(this) in result.filename
    _, last = _export(
        session,
        tmp_path,
        manager,
        ExportKind.PAYMENTS,
        today=today,
        period=Period.last_month(today),
    )
    assert loan.loan_number not in {r["loan_number"] for r in read_csv(last)}
    assert paid is not None


def test_periods_are_checked(today) -> None:
    with pytest.raises(InvalidInput):
        Period(today, today - timedelta(days=1))
    with pytest.raises(InvalidInput):
        Period(today - timedelta(days=400), today)
    assert Period.last_month(today.replace(day=1)).last == today.replace(day=1) - timedelta(days=1)


def test_an_agent_cannot_export_and_finance_can(session, tmp_path, today, agent) -> None:
    with pytest.raises(AccessDenied):
        _export(session, tmp_path, agent, ExportKind.LOANS, today=today)
    finance = make_staff(session, role=Role.FINANCE)
    loan = _loan(session, agent)
    result, path = _export(session, tmp_path, finance, ExportKind.LOANS, today=today)
    assert loan.loan_number in {r["loan_number"] for r in read_csv(path)}
    audit = session.scalars(
        select(AuditEvent).where(
            AuditEvent.staff_id == finance.id, AuditEvent.action == "export_made"
        )
    ).one()
    assert audit.details == {"kind": "loans", "format": "csv", "rows": result.rows}


def test_deliveries_export_and_progress(session, tmp_path, today, admin) -> None:
    for _ in range(5):
        _loan(session, make_staff(session, role=Role.AGENT))
    seen: list[int] = []
    result, _ = _export(
        session, tmp_path, admin, ExportKind.LOANS, today=today, progress=seen.append, every=2
    )
    assert seen == list(range(2, result.rows + 1, 2))
    result, path = _export(
        session, tmp_path, admin, ExportKind.DELIVERIES, today=today, period=Period.month_of(today)
    )
    assert read_csv(path) == [] or "status" in read_csv(path)[0]


def test_filename_is_safe(today) -> None:
    name = export_filename(AGENCY, ExportKind.OVERDUE, ExportFormat.XLSX, today, None)
    assert name == f"sai-finance-co-overdue-{today.isoformat()}.xlsx"
