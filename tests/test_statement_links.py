"""A borrower texting STATEMENT gets a signed, short-lived link to the PDF; the web serves it
to that link only (anything else: the same bare 404)."""

from __future__ import annotations

import io
import random
import re
import uuid
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from pypdf import PdfReader
from sqlalchemy import select

from cli.miniapp import web_app
from db import clock
from db.agency import Agency
from db.models import AuditEvent, Loan, Message
from db.services.sms.inbound import Keyword, handle_inbound, keyword_of
from db.services.statements.links import StatementLinks, links_of
from tests.factories import make_borrower, make_loan, make_staff

PUBLIC = "https://vasooli.example.com"
LINKS = StatementLinks(PUBLIC, b"k" * 32, 24)


def _phone() -> str:
    return f"+9194{random.randrange(10**8):08d}"


def _sms(session, phone: str, body: str, links=LINKS, per_hour: int = 3):
    sid = f"SM{uuid.uuid4().hex}"
    handle_inbound(
        session,
        provider_sid=sid,
        from_phone=phone,
        body=body,
        agency=Agency(name="Sai Finance", phone="+919000000001"),
        today=clock.utcnow().date(),
        replies_per_hour=per_hour,
        statement_links=links,
    )
    return session.scalar(select(Message).where(Message.idempotency_key == f"reply:{sid}"))


def _borrower_with_loan(session):
    borrower = make_borrower(session, phone=_phone(), name="Asha Devi")
    number = f"SL-{uuid.uuid4().hex[:8].upper()}"
    loan = make_loan(session, agent=make_staff(session), borrower=borrower, loan_number=number)
    return borrower, loan


def _token(body: str) -> str:
    return re.search(r"/s/(\S+)", body).group(1)


def test_the_keyword() -> None:
    assert keyword_of("statement") is Keyword.STATEMENT is keyword_of("STMT")
    assert keyword_of("statement please send") is None  # a sentence is news for the agent


def test_a_link_holds_only_as_signed_and_until_it_expires() -> None:
    now = clock.utcnow()
    token = _token(LINKS.link_for(42, now))
    assert LINKS.loan_of(token, now) == 42
    _, expires, sig = token.split(".")
    assert LINKS.loan_of(f"43.{expires}.{sig}", now) is None  # another loan, same signature
    assert LINKS.loan_of(f"42.{int(expires) + 3600}.{sig}", now) is None  # a longer life
    altered = sig[:-1] + ("B" if sig.endswith("A") else "A")
    assert LINKS.loan_of(f"42.{expires}.{altered}", now) is None
    assert LINKS.loan_of(token, now + timedelta(hours=24, seconds=1)) is None
    other = StatementLinks(PUBLIC, b"x" * 32, 24)
    assert other.loan_of(token, now) is None
    for junk in ("", "42", "a.b.c", "42..x", "9" * 40 + ".1.x"):
        assert LINKS.loan_of(junk, now) is None


def test_the_key_comes_from_settings(settings) -> None:
    assert links_of(settings.model_copy(update={"public_base_url": None})) is None
    bare = settings.model_copy(update={"public_base_url": PUBLIC, "twilio_auth_token": None})
    assert links_of(bare) is None
    derived = links_of(bare.model_copy(update={"twilio_auth_token": SecretStr("t" * 32)}))
    assert derived is not None and derived.key != b"t" * 32
    own = links_of(bare.model_copy(update={"statement_link_secret": SecretStr("s3cret")}))
    assert own.key == b"s3cret" and own.hours == 24


def test_statement_is_answered_with_a_link_audited_and_rate_limited(session) -> None:
    borrower, loan = _borrower_with_loan(session)
    reply = _sms(session, borrower.phone, "STATEMENT", per_hour=1)
    assert f"statement of loan {loan.loan_number}: {PUBLIC}/s/" in reply.body
    assert LINKS.loan_of(_token(reply.body), clock.utcnow()) == loan.id
    assert session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "statement_link_sent", AuditEvent.target_id == loan.loan_number
        )
    ).one()
    assert _sms(session, borrower.phone, "STATEMENT", per_hour=1) is None  # over the limit
    stranger = _sms(session, _phone(), "STATEMENT")
    assert "could not find an account" in stranger.body
    no_links = _sms(session, _borrower_with_loan(session)[0].phone, "stmt", links=None)
    assert "please call +919000000001" in no_links.body and "/s/" not in no_links.body


@pytest.fixture
def web_settings(settings):
    return settings.model_copy(
        update={
            "public_base_url": PUBLIC,
            "statement_link_secret": SecretStr("k" * 32),
            "twilio_auth_token": SecretStr("0123456789abcdef" * 2),
        }
    )


async def test_the_web_serves_the_pdf_to_the_link_only(web_settings, committed) -> None:
    links = links_of(web_settings)
    with committed.begin() as session:
        borrower, loan = _borrower_with_loan(session)
        loan_id, number = loan.id, loan.loan_number
        reply = _sms(session, borrower.phone, "STATEMENT", links=links)
        token = _token(reply.body)
    app = web_app(web_settings, committed)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as http:
        ok = await http.get(f"/s/{token}")
        assert ok.status_code == 200 and ok.headers["content-type"] == "application/pdf"
        assert ok.headers["cache-control"] == "no-store"
        text = PdfReader(io.BytesIO(ok.content)).pages[0].extract_text()
        assert f"loan {number}" in text and "Asha Devi" in text
        _, expires, sig = token.split(".")
        altered = sig[:-2] + ("yx" if sig.endswith("xy") else "xy")
        for bad in (f"{loan_id + 1}.{expires}.{sig}", f"{loan_id}.{expires}.{altered}", "x"):
            refused = await http.get(f"/s/{bad}")
            assert (refused.status_code, refused.text) == (404, "Not Found")
        with committed.begin() as session:
            session.get(Loan, loan_id).archived_at = clock.utcnow()
        assert (await http.get(f"/s/{token}")).status_code == 404
