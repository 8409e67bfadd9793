"""Statements (issue 13): the PDF's text read back, the balance, scope, audit; and the bot."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from db.agency import Agency
from db.models import AuditEvent, Role
from db.services.access import Actor
from db.services.collection import payments
from db.services.errors import NotFound
from db.services.statements.data import statement_by_id, statement_for_staff
from db.services.statements.pdf import latin, render_pdf, statement_filename
from tests.bot_harness import BotHarness
from tests.bot_helpers import button, new_loan, open_card
from tests.factories import make_borrower, make_loan, make_staff

AGENCY = Agency(name="Sai Finance", phone="+91 98450 00000")


def _actor(staff) -> Actor:
    return Actor(staff_id=staff.id, role=staff.role, name=staff.name)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _loan(session, agent):
    phone = f"+9196{uuid.uuid4().int % 10**8:08d}"
    borrower = make_borrower(session, name="Asha Dévi", phone=phone, address="7 Temple Street")
    number = f"ST-{uuid.uuid4().hex[:8].upper()}"
    return make_loan(
        session,
        agent=agent,
        borrower=borrower,
        loan_number=number,
        count=3,
        principal=Decimal("3000.00"),
    )


def test_the_pdf_says_everything(session, today, agent) -> None:
    loan = _loan(session, agent)
    payments.record_payment(
        session,
        actor=_actor(agent),
        loan_number=loan.loan_number,
        amount=Decimal("1250.50"),
        today=today,
    )
    st = statement_for_staff(
        session, actor=_actor(agent), loan_number=loan.loan_number, agency=AGENCY, today=today
    )
    assert st.balance == Decimal("1749.50") == st.movements[-1].balance
    text = pdf_text(render_pdf(st, AGENCY))
    for expected in (
        "Sai Finance",
        "+91 98450 00000",
        f"Account statement - loan {loan.loan_number}",
        f"Generated on {today.isoformat()}",
        "Asha Dévi",
        "7 Temple Street",
        "Principal: INR 3000.00; 3 monthly installment(s), no interest",
        "INR 1250.50",
        "Balance due: INR 1749.50",
    ):
        assert expected in text, expected
    assert text.count("open") + text.count("paid") >= 3  # one schedule line per installment
    audit = session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "statement_made", AuditEvent.target_id == loan.loan_number
        )
    ).one()
    assert audit.staff_id == agent.id


def test_another_agents_loan_is_not_found(session, today, agent_a, agent_b) -> None:
    loan = _loan(session, agent_a)
    with pytest.raises(NotFound):
        statement_for_staff(
            session, actor=_actor(agent_b), loan_number=loan.loan_number, agency=AGENCY, today=today
        )
    for role in (Role.MANAGER, Role.ADMIN, Role.FINANCE):
        who = make_staff(session, role=role)
        st = statement_for_staff(
            session, actor=_actor(who), loan_number=loan.loan_number, agency=AGENCY, today=today
        )
        assert st.loan_number == loan.loan_number


def test_names_outside_latin1_and_the_filename(session, today, agent) -> None:
    assert latin("Ramesh ₹ राम") == "Ramesh ? ???"
    loan = _loan(session, agent)
    st = statement_by_id(session, loan_id=loan.id, agency=AGENCY, today=today)
    assert statement_filename(AGENCY, st) == (
        f"sai-finance-statement-{loan.loan_number}-{today.isoformat()}.pdf"
    )
    assert statement_by_id(session, loan_id=10**12, agency=AGENCY, today=today) is None


@pytest.mark.e2e
async def test_statement_through_the_bot_command_and_the_card(settings, committed) -> None:
    async with BotHarness(settings, committed) as h:
        agent, other = h.make_staff(Role.AGENT), h.make_staff(Role.AGENT)
        loan = new_loan(h, agent)
        sent = await h.say(agent, f"/statement {loan.number}")
        assert sent["kind"] == "document", sent["text"]
        assert sent["message"]["document"]["file_name"].endswith(".pdf")
        with open(sent["document"], "rb") as f:
            text = pdf_text(f.read())
        assert f"loan {loan.number}" in text and "Balance due: INR 10000.00" in text
        refused = await h.say(other, f"/statement {loan.number}")
        assert refused["kind"] == "text" and f"No loan {loan.number} found" in refused["text"]
        card = await open_card(h, agent, loan)
        await h.press(agent, card, button(card, "Statement"))
        again = await h.wait(agent, predicate=lambda m: m["kind"] == "document")
        assert again["message"]["document"]["file_name"].endswith(".pdf")
