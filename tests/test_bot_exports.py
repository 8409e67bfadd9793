"""End-to-end over HTTP: /export through the real bot and the sandbox Bot API (sendDocument)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from openpyxl import load_workbook

from db import clock
from db.models import AuditEvent, Role
from db.services.exports.kinds import Period
from tests.bot_harness import BotHarness
from tests.bot_helpers import button, count, new_loan, tap

pytestmark = pytest.mark.e2e


def _is_document(message: dict) -> bool:
    return message["kind"] == "document"


def _csv_rows(path: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))


async def test_a_manager_exports_loans_as_csv_through_the_menu(settings, committed) -> None:
    async with BotHarness(settings, committed) as h:
        agent, manager = h.make_staff(Role.AGENT), h.make_staff(Role.MANAGER)
        loans = [new_loan(h, agent) for _ in range(3)]
        menu = await h.say(manager, "/export")
        assert "Export" in menu["text"]
        ask = await tap(h, manager, menu, "Loans")
        assert "which format" in ask["text"]
        await h.press(manager, ask, button(ask, "CSV"))
        sent = await h.wait(manager, predicate=_is_document)
        today = clock.today(h.settings.tz).isoformat()
        name = sent["message"]["document"]["file_name"]
        assert name.endswith(f"-loans-{today}.csv") and "rows" in sent["text"]
        rows = {r["loan_number"]: r for r in _csv_rows(sent["document"])}
        assert {loan.number for loan in loans} <= set(rows)
        assert rows[loans[0].number]["principal"] == "10000.00"
        assert count(h, AuditEvent, AuditEvent.action == "export_made") >= 1


async def test_finance_exports_payments_for_typed_dates_as_xlsx(settings, committed) -> None:
    async with BotHarness(settings, committed) as h:
        finance = h.make_staff(Role.FINANCE)
        period = Period.month_of(clock.today(h.settings.tz))
        ask = await h.say(finance, f"/export payments {period.first} {period.last}")
        await h.press(finance, ask, button(ask, "XLSX"))
        sent = await h.wait(finance, predicate=_is_document)
        assert sent["message"]["document"]["file_name"].endswith(".xlsx")
        sheet = load_workbook(sent["document"], read_only=True).active
        assert next(sheet.iter_rows(values_only=True))[:3] == (
            "payment_id",
            "paid_on",
            "loan_number",
        )


async def test_the_period_menu_and_typed_dates_hint(settings, committed) -> None:
    async with BotHarness(settings, committed) as h:
        admin = h.make_staff(Role.ADMIN)
        menu = await h.say(admin, "/export")
        periods = await tap(h, admin, menu, "deliveries")
        assert [b["text"] for b in periods["buttons"]] == [
            "This month",
            "Last month",
            "Other dates…",
        ]
        hint = await tap(h, admin, periods, "Other dates")
        assert "/export deliveries 2026-11-01 2026-11-30" in hint["text"]
        bad = await h.say(admin, "/export payments 2026-13-01 2026-11-30")
        assert "is not a date" in bad["text"]


async def test_an_agent_is_refused(settings, committed) -> None:
    async with BotHarness(settings, committed) as h:
        agent = h.make_staff(Role.AGENT)
        answer = await h.say(agent, "/export")
        assert answer["text"].startswith("Only managers, admins and finance may export")
        assert not answer["buttons"]


async def test_progress_is_shown_by_editing_one_message(settings, committed) -> None:
    async with BotHarness(settings, committed, export_progress_rows=100) as h:
        agent, manager = h.make_staff(Role.AGENT), h.make_staff(Role.MANAGER)
        for _ in range(230):
            new_loan(h, agent)
        ask = await h.say(manager, "/export loans")
        await h.press(manager, ask, button(ask, "CSV"))
        sent = await h.wait(manager, predicate=_is_document, timeout=30)
        note = await h.wait(
            manager, predicate=lambda m: m["kind"] == "text" and m["text"].startswith("✅")
        )
        rows = len(_csv_rows(sent["document"]))
        assert note["text"] == f"✅ 📋 Loans: {rows:,} rows." and rows >= 230
        assert note["edits"] >= rows // 100 + 1  # one per 100 rows, then the last word
