"""API keys at the door: unknown, revoked and inactive keys, the rate limit, usage and
audit, problem details for everything else, replays under concurrency, the OpenAPI paths."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from api import borrowers, build_api, loans, reports
from db import clock
from db.models import ApiKey, AuditEvent, Payment, Staff, StaffState
from db.services.staff.api_keys import ApiScope, revoke_api_key
from tests.api_helpers import Agency, api_app, api_settings, bearer, make_agency, new_key
from tests.factories import actor

PROBLEM = "application/problem+json"


@pytest.fixture
def agency(committed) -> Agency:
    return make_agency(committed)


@pytest.fixture
def api(committed, database_url, agency):
    with TestClient(api_app(api_settings(database_url), committed)) as client:
        yield client


def _audits(committed, action: str) -> list[AuditEvent]:
    with committed() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_unknown_missing_and_revoked_keys_get_401(api, committed, agency):
    for headers in ({}, bearer("vsk_not-a-key"), {"Authorization": "Basic dXNlcjpwdw=="}):
        answer = api.get("/api/v1/loans", headers=headers)
        assert answer.status_code == 401 and answer.headers["content-type"] == PROBLEM
        assert answer.headers["www-authenticate"] == "Bearer"
    key_id, token = new_key(committed, agency.admin_id)
    assert api.get("/api/v1/loans", headers=bearer(token)).status_code == 200
    with committed() as session:
        revoke_api_key(session, actor=actor(session.get_one(Staff, agency.admin_id)), key_id=key_id)
        session.commit()
    revoked = api.get("/api/v1/loans", headers=bearer(token))
    assert revoked.status_code == 401 and revoked.json()["code"] == "api_key"


def test_a_disabled_members_key_stops_working(api, committed, agency):
    _, token = new_key(committed, agency.admin_id, for_staff=agency.agent_a_id)
    with committed() as session:
        session.get_one(Staff, agency.agent_a_id).state = StaffState.DISABLED
        session.commit()
    answer = api.get("/api/v1/loans", headers=bearer(token))
    assert answer.status_code == 401 and answer.json()["code"] == "inactive"


def test_the_rate_limit_is_per_key_with_retry_after(committed, database_url, agency):
    settings = api_settings(database_url, api_rate_per_minute=3)
    _, busy = new_key(committed, agency.admin_id)
    _, calm = new_key(committed, agency.admin_id)
    with TestClient(api_app(settings, committed)) as api:
        for _ in range(3):
            assert api.get("/api/v1/loans", headers=bearer(busy)).status_code == 200
        refused = api.get("/api/v1/loans", headers=bearer(busy))
        assert refused.status_code == 429 and refused.headers["content-type"] == PROBLEM
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["code"] == "rate_limited"
        assert api.get("/api/v1/loans", headers=bearer(calm)).status_code == 200
        clock.advance(timedelta(seconds=61))
        assert api.get("/api/v1/loans", headers=bearer(busy)).status_code == 200


def test_writes_are_audited_per_call_and_reads_counted_per_day(api, committed, agency):
    key_id, token = new_key(committed, agency.admin_id, ApiScope.READ, ApiScope.PAYMENTS_WRITE)
    for _ in range(3):
        assert api.get("/api/v1/loans", headers=bearer(token)).status_code == 200
    url = f"/api/v1/loans/{agency.loan_a}/payments"
    headers = bearer(token) | {"Idempotency-Key": "a-1"}
    assert api.post(url, headers=headers, json={"amount": "10.00"}).status_code == 201
    assert api.post(url, headers=headers, json={"amount": "11.00"}).status_code == 422
    calls = _audits(committed, "api_call")
    assert [(c.target_id, c.details) for c in calls] == [
        (str(key_id), {"method": "POST", "path": url, "status": 201}),
        (str(key_id), {"method": "POST", "path": url, "status": 422}),
    ]
    assert all(c.staff_id == agency.admin_id for c in calls)
    with committed() as session:
        key = session.get_one(ApiKey, key_id)
        assert (key.reads_on_day, key.reads_total) == (3, 3) and key.last_used_at is not None
    assert _audits(committed, "api_reads") == []
    clock.advance(timedelta(days=1))
    assert api.get("/api/v1/loans", headers=bearer(token)).status_code == 200
    [day] = _audits(committed, "api_reads")
    assert day.details["reads"] == 3 and day.target_id == str(key_id)


def test_problem_details_everywhere_and_no_internals(committed, database_url, agency):
    app = build_api(api_settings(database_url), committed)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    _, token = new_key(committed, agency.admin_id)
    served = Starlette(routes=[Mount("/api/v1", app)])
    with TestClient(served, raise_server_exceptions=False) as api:
        crash = api.get("/api/v1/boom", headers=bearer(token))
        assert crash.status_code == 500 and crash.headers["content-type"] == PROBLEM
        assert crash.json()["code"] == "internal"
        assert "hunter2" not in crash.text and "Traceback" not in crash.text
        nowhere = api.get("/api/v1/nowhere", headers=bearer(token))
        assert nowhere.status_code == 404 and nowhere.headers["content-type"] == PROBLEM
        wrong = api.delete("/api/v1/loans", headers=bearer(token))
        assert wrong.status_code == 405 and wrong.headers["content-type"] == PROBLEM
        junk = api.get("/api/v1/loans?limit=<script>", headers=bearer(token))
        assert junk.status_code == 422 and "<script>" not in junk.text
        assert set(junk.json()) == {"type", "title", "status", "detail", "code", "errors"}


def test_concurrent_retries_record_one_payment(committed, database_url, agency):
    _, token = new_key(committed, agency.admin_id, ApiScope.PAYMENTS_WRITE)
    url = f"/api/v1/loans/{agency.loan_b}/payments"
    headers = bearer(token) | {"Idempotency-Key": "race"}
    answers: list[tuple[int, dict]] = []
    with TestClient(api_app(api_settings(database_url), committed)) as api:

        def pay() -> None:
            answer = api.post(url, headers=headers, json={"amount": "25.00"})
            answers.append((answer.status_code, answer.json()))

        threads = [threading.Thread(target=pay) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert [status for status, _ in answers] == [201] * 4
    assert len({body["payment_id"] for _, body in answers}) == 1
    with committed() as session:
        assert session.scalar(select(func.count()).select_from(Payment)) == 1


def test_the_openapi_document_lists_every_path(committed, database_url):
    with TestClient(api_app(api_settings(database_url), committed)) as api:
        document = api.get("/api/v1/openapi.json")
    assert document.status_code == 200
    schema = document.json()
    assert schema["servers"] == [{"url": "/api/v1"}]
    routes = {
        (r.path, m.lower())
        for module in (borrowers, loans, reports)
        for r in module.router.routes
        if isinstance(r, APIRoute)
        for m in r.methods
    }
    listed = {(path, method) for path, ops in schema["paths"].items() for method in ops}
    assert routes == listed
    assert {path for path, _ in listed} == {
        "/loans",
        "/loans/{loan_number}",
        "/loans/{loan_number}/payments",
        "/loans/{loan_number}/promises",
        "/loans/{loan_number}/messages",
        "/borrowers",
        "/borrowers/{borrower_id}",
        "/reports/portfolio",
    }
    pay = schema["paths"]["/loans/{loan_number}/payments"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in pay["parameters"])
    amount = schema["components"]["schemas"]["PaymentCreate"]["properties"]["amount"]
    assert amount["type"] == "string"  # money is a decimal string, never a float
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_an_api_key_never_reaches_a_log_line(committed, agency):
    from db import redact

    _, token = new_key(committed, agency.admin_id)
    assert redact.redact(f"Authorization: Bearer {token}") == "Authorization: Bearer ***"
