"""The JSON API at /api/v1 through the app `vasooli web` serves: every endpoint, access by
role and by scope, idempotent payments, problem details and the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from db import clock
from db.models import Message, MessageKind, MessageStatus, Payment, Promise
from db.services.staff.api_keys import ApiScope
from tests.api_helpers import Agency, api_app, api_settings, bearer, make_agency, new_key

PROBLEM = "application/problem+json"
ALL_WRITES = (ApiScope.READ, ApiScope.PAYMENTS_WRITE, ApiScope.PROMISES_WRITE, ApiScope.LOANS_WRITE)


@pytest.fixture
def agency(committed) -> Agency:
    return make_agency(committed)


@pytest.fixture
def api(committed, database_url, agency):
    with TestClient(api_app(api_settings(database_url), committed)) as client:
        yield client


def _key(committed, agency: Agency, who: str, *scopes: ApiScope) -> dict[str, str]:
    staff = {
        "admin": agency.admin_id,
        "manager": agency.manager_id,
        "agent_a": agency.agent_a_id,
        "agent_b": agency.agent_b_id,
    }[who]
    return bearer(new_key(committed, agency.admin_id, *scopes, for_staff=staff)[1])


def _is_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"urn:vasooli:problem:{code}"
    assert body["title"] and body["detail"]
    return body


def _payments(committed) -> int:
    with committed() as session:
        return session.scalar(select(func.count()).select_from(Payment))


# --- loans -------------------------------------------------------------------------------


def test_an_agents_key_lists_only_their_loans_a_managers_all(api, committed, agency):
    mine = api.get("/api/v1/loans", headers=_key(committed, agency, "agent_a"))
    assert [i["loan_number"] for i in mine.json()["items"]] == [agency.loan_a]
    assert mine.json()["items"][0]["outstanding"] == "5000.00"  # a decimal string
    everyone = api.get("/api/v1/loans?with_total=true", headers=_key(committed, agency, "manager"))
    assert {i["loan_number"] for i in everyone.json()["items"]} == {agency.loan_a, agency.loan_b}
    assert everyone.json()["total"] == 2


def test_loans_page_by_keyset_and_filter(api, committed, agency):
    key = _key(committed, agency, "admin")
    first = api.get("/api/v1/loans?limit=1", headers=key).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = api.get(f"/api/v1/loans?limit=1&after={first['next_cursor']}", headers=key).json()
    assert second["items"][0]["loan_number"] != first["items"][0]["loan_number"]
    assert second["next_cursor"] is None and second["prev_cursor"]
    back = api.get(f"/api/v1/loans?limit=1&before={second['prev_cursor']}", headers=key).json()
    assert back["items"] == first["items"]
    assert api.get("/api/v1/loans?filter=closed", headers=key).json()["items"] == []
    other = api.get(f"/api/v1/loans?agent_id={agency.agent_b_id}", headers=key).json()
    assert [i["loan_number"] for i in other["items"]] == [agency.loan_b]
    _is_problem(api.get("/api/v1/loans?after=garbage", headers=key), 400, "cursor")


def test_an_agent_may_not_list_another_agents_loans(api, committed, agency):
    key = _key(committed, agency, "agent_a")
    _is_problem(api.get(f"/api/v1/loans?agent_id={agency.agent_b_id}", headers=key), 403, "role")


def test_another_agents_loan_is_not_found_like_a_missing_one(api, committed, agency):
    key = _key(committed, agency, "agent_a")
    card = api.get(f"/api/v1/loans/{agency.loan_a}", headers=key)
    assert card.status_code == 200 and card.json()["principal"] == "5000.00"
    theirs = _is_problem(
        api.get(f"/api/v1/loans/{agency.loan_b}", headers=key), 404, "loan_not_found"
    )
    missing = _is_problem(api.get("/api/v1/loans/NOPE-1", headers=key), 404, "loan_not_found")
    assert theirs["detail"].replace(agency.loan_b, "X") == missing["detail"].replace("NOPE-1", "X")
    for tail in ("payments", "promises", "messages"):
        _is_problem(
            api.get(f"/api/v1/loans/{agency.loan_b}/{tail}", headers=key), 404, "loan_not_found"
        )


def _new_loan(**extra) -> dict:
    due = (clock.utcnow() + timedelta(days=20)).date().isoformat()
    body = {"phone": "+919876500001", "name": "Kiran Rao", "principal": "12000.00"}
    return body | {"first_due": due, "count": 3} | extra


def test_a_loan_is_created_by_the_bots_rules(api, committed, agency):
    key = _key(committed, agency, "agent_a", ApiScope.READ, ApiScope.LOANS_WRITE)
    made = api.post("/api/v1/loans", headers=key, json=_new_loan())
    assert made.status_code == 201, made.text
    loan = made.json()
    assert loan["agent_id"] == agency.agent_a_id and loan["installments_count"] == 3
    assert loan["principal"] == "12000.00" and loan["outstanding"] == "12000.00"
    assert api.get(f"/api/v1/loans/{loan['loan_number']}", headers=key).status_code == 200
    # An agent adds to their own portfolio only; MAX_AMOUNT holds; money never as a float.
    other = _new_loan(phone="+919876500002", agent_id=agency.agent_b_id)
    _is_problem(api.post("/api/v1/loans", headers=key, json=other), 403, "role")
    huge = _new_loan(phone="+919876500003", principal="1000000000.00")
    assert api.post("/api/v1/loans", headers=key, json=huge).status_code == 400
    floaty = _new_loan(phone="+919876500004", principal=12000.5)
    body = _is_problem(api.post("/api/v1/loans", headers=key, json=floaty), 422, "validation")
    assert body["errors"][0]["field"] == "body.principal"


def test_an_agent_cannot_attach_a_loan_to_another_agents_borrower(api, committed, agency):
    key = _key(committed, agency, "agent_a", ApiScope.LOANS_WRITE)
    with committed() as session:
        from db.models import Borrower

        phone = session.get_one(Borrower, agency.borrower_b_id).phone
    refused = api.post("/api/v1/loans", headers=key, json=_new_loan(phone=phone))
    _is_problem(refused, 403, "phone_unavailable")


def test_a_read_only_key_writes_nothing(api, committed, agency):
    key = _key(committed, agency, "admin")  # read only
    _is_problem(api.post("/api/v1/loans", headers=key, json=_new_loan()), 403, "scope")
    pay = api.post(
        f"/api/v1/loans/{agency.loan_a}/payments",
        headers=key | {"Idempotency-Key": "r1"},
        json={"amount": "10.00"},
    )
    _is_problem(pay, 403, "scope")
    promise = {"amount": "10.00", "promised_date": clock.utcnow().date().isoformat()}
    _is_problem(
        api.post(f"/api/v1/loans/{agency.loan_a}/promises", headers=key, json=promise), 403, "scope"
    )
    assert _payments(committed) == 0
    # A write-only key reads nothing either.
    writer = _key(committed, agency, "admin", ApiScope.PAYMENTS_WRITE)
    _is_problem(api.get("/api/v1/loans", headers=writer), 403, "scope")


# --- payments ----------------------------------------------------------------------------


def test_a_retried_payment_is_recorded_once(api, committed, agency):
    key = _key(committed, agency, "agent_a", ApiScope.READ, ApiScope.PAYMENTS_WRITE)
    call = {
        "headers": key | {"Idempotency-Key": "pos-7781"},
        "json": {"amount": "1500.50", "method": "upi", "note": "counter 2"},
    }
    first = api.post(f"/api/v1/loans/{agency.loan_a}/payments", **call)
    assert first.status_code == 201, first.text
    assert first.json()["amount"] == "1500.50" and first.json()["outstanding"] == "3499.50"
    assert first.json()["allocations"] == [{"installment": 1, "fee": "0.00", "amount": "1500.50"}]
    again = api.post(f"/api/v1/loans/{agency.loan_a}/payments", **call)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert _payments(committed) == 1
    other = api.post(
        f"/api/v1/loans/{agency.loan_a}/payments",
        headers=call["headers"],
        json={"amount": "99.00"},
    )
    _is_problem(other, 422, "idempotency_key_reused")
    assert _payments(committed) == 1
    listed = api.get(f"/api/v1/loans/{agency.loan_a}/payments", headers=key).json()
    assert [(p["amount"], p["method"]) for p in listed] == [("1500.50", "upi")]


def test_a_payment_needs_an_idempotency_key_and_a_sane_amount(api, committed, agency):
    key = _key(committed, agency, "agent_a", ApiScope.PAYMENTS_WRITE)
    url = f"/api/v1/loans/{agency.loan_a}/payments"
    missing = _is_problem(api.post(url, headers=key, json={"amount": "10.00"}), 422, "validation")
    assert missing["errors"] == [{"field": "header.Idempotency-Key", "message": "Field required"}]
    over = api.post(url, headers=key | {"Idempotency-Key": "o1"}, json={"amount": "9999.00"})
    assert _is_problem(over, 400, "overpay")["detail"].startswith("That is more than")
    # A refusal stores no answer: the same key works once the amount is right.
    fixed = api.post(url, headers=key | {"Idempotency-Key": "o1"}, json={"amount": "5000.00"})
    assert fixed.status_code == 201 and fixed.json()["closed"] is True
    closed = api.post(url, headers=key | {"Idempotency-Key": "o2"}, json={"amount": "1.00"})
    _is_problem(closed, 409, "loan_not_active")
    theirs = api.post(
        f"/api/v1/loans/{agency.loan_b}/payments",
        headers=key | {"Idempotency-Key": "o3"},
        json={"amount": "1.00"},
    )
    _is_problem(theirs, 404, "loan_not_found")


def test_idempotency_keys_belong_to_one_api_key(api, committed, agency):
    one = _key(committed, agency, "manager", ApiScope.PAYMENTS_WRITE)
    two = _key(committed, agency, "manager", ApiScope.PAYMENTS_WRITE)
    url = f"/api/v1/loans/{agency.loan_b}/payments"
    for key in (one, two):
        answer = api.post(url, headers=key | {"Idempotency-Key": "same"}, json={"amount": "5.00"})
        assert answer.status_code == 201
    assert _payments(committed) == 2


# --- promises, messages, borrowers, reports ------------------------------------------------


def test_promises_are_recorded_and_listed(api, committed, agency):
    key = _key(committed, agency, "agent_a", ApiScope.READ, ApiScope.PROMISES_WRITE)
    when = (clock.utcnow() + timedelta(days=3)).date().isoformat()
    made = api.post(
        f"/api/v1/loans/{agency.loan_a}/promises",
        headers=key,
        json={"amount": "700.00", "promised_date": when},
    )
    assert made.status_code == 201, made.text
    assert (made.json()["amount"], made.json()["state"]) == ("700.00", "open")
    listed = api.get(f"/api/v1/loans/{agency.loan_a}/promises", headers=key).json()
    assert [p["id"] for p in listed] == [made.json()["id"]]
    card = api.get(f"/api/v1/loans/{agency.loan_a}", headers=key).json()
    assert card["open_promise"]["amount"] == "700.00"
    past = {"amount": "700.00", "promised_date": "2000-01-01"}
    url = f"/api/v1/loans/{agency.loan_a}/promises"
    _is_problem(api.post(url, headers=key, json=past), 400, "date_past")
    with committed() as session:
        assert session.scalar(select(func.count()).select_from(Promise)) == 1


def test_a_loans_messages_show_their_delivery_status(api, committed, agency):
    with committed() as session:
        from db.models import Loan

        loan = session.scalars(select(Loan).where(Loan.loan_number == agency.loan_a)).one()
        session.add(
            Message(
                to_phone="+919800000001",
                body="Your payment is due",
                kind=MessageKind.REMINDER,
                loan_id=loan.id,
                borrower_id=loan.borrower_id,
                idempotency_key="api-test-1",
                status=MessageStatus.FAILED,
                error_code="30003",
                attempts=1,
            )
        )
        session.commit()
    key = _key(committed, agency, "agent_a")
    [message] = api.get(f"/api/v1/loans/{agency.loan_a}/messages", headers=key).json()
    assert (message["status"], message["error_code"], message["kind"]) == (
        "failed",
        "30003",
        "reminder",
    )
    assert api.get(f"/api/v1/loans/{agency.loan_b}/messages", headers=key).status_code == 404


def test_borrowers_in_scope_only(api, committed, agency):
    key = _key(committed, agency, "agent_a")
    page = api.get("/api/v1/borrowers", headers=key).json()
    assert [b["id"] for b in page["items"]] == [agency.borrower_a_id]
    assert page["items"][0]["loans_count"] == 1
    one = api.get(f"/api/v1/borrowers/{agency.borrower_a_id}", headers=key)
    assert one.json()["name"] == "Ravi Kumar"
    theirs = api.get(f"/api/v1/borrowers/{agency.borrower_b_id}", headers=key)
    _is_problem(theirs, 404, "borrower_not_found")
    manager = _key(committed, agency, "manager")
    found = api.get("/api/v1/borrowers?q=sit", headers=manager).json()["items"]
    assert [b["name"] for b in found] == ["Sita Devi"]
    paged = api.get("/api/v1/borrowers?limit=1", headers=manager).json()
    rest = api.get(f"/api/v1/borrowers?limit=1&after={paged['next_after']}", headers=manager)
    assert rest.json()["items"][0]["id"] != paged["items"][0]["id"]


def test_reports_cover_the_callers_portfolio(api, committed, agency):
    mine = api.get("/api/v1/reports/portfolio?days=7", headers=_key(committed, agency, "agent_a"))
    assert mine.status_code == 200
    assert (mine.json()["loans_active"], mine.json()["outstanding"]) == (1, "5000.00")
    assert mine.json()["per_agent"] == [] and len(mine.json()["collections_by_day"]) == 7
    everyone = api.get("/api/v1/reports/portfolio", headers=_key(committed, agency, "manager"))
    body = everyone.json()
    assert (body["loans_active"], body["outstanding"]) == (2, "12000.00")
    assert {line["agent_id"] for line in body["per_agent"]} == {
        agency.agent_a_id,
        agency.agent_b_id,
    }
    assert Decimal(body["collected_month"]) == 0
