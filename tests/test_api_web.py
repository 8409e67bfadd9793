"""`vasooli web` serves the JSON API at /api/v1 beside Twilio's webhooks, on one port."""

from __future__ import annotations

import signal

import httpx
import pytest

from db.session import make_engine, make_session_factory
from scheduler.serve import listen_socket
from tests.api_helpers import bearer, make_agency, new_key
from tests.test_demo import _env, _upgrade_and_start
from tests.test_miniapp_web import _wait_healthy


@pytest.mark.e2e
def test_vasooli_web_serves_the_api(tmp_path):
    with listen_socket("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    base, url = f"http://127.0.0.1:{port}", f"sqlite:///{tmp_path / 'web.db'}"
    env = _env() | {
        "DATABASE_URL": url,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "twilio-token",
        "PUBLIC_BASE_URL": base,
        "PORT": str(port),
    }
    proc = _upgrade_and_start(tmp_path, env, "web")
    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        agency = make_agency(factory)
        _, token = new_key(factory, agency.admin_id, for_staff=agency.agent_a_id)
        _wait_healthy(base, proc)
        loans = httpx.get(f"{base}/api/v1/loans", headers=bearer(token), timeout=10)
        assert loans.status_code == 200
        assert [i["loan_number"] for i in loans.json()["items"]] == [agency.loan_a]
        theirs = httpx.get(f"{base}/api/v1/loans/{agency.loan_b}", headers=bearer(token))
        assert theirs.status_code == 404
        assert theirs.headers["content-type"] == "application/problem+json"
        schema = httpx.get(f"{base}/api/v1/openapi.json", timeout=10).json()
        assert "/loans/{loan_number}/payments" in schema["paths"]
        assert httpx.get(f"{base}/api/v1/loans", timeout=10).status_code == 401
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        engine.dispose()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
