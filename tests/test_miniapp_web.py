"""`vasooli web` serves the Mini App at /app/ next to Twilio's webhooks, on one port."""

from __future__ import annotations

import signal
import time
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from cli.miniapp import miniapp_line, with_miniapp
from db.models import Role
from db.sample.demo import DemoPerson
from db.services.staff.sessions import open_session
from scheduler.serve import listen_socket
from tests.factories import make_staff
from tests.miniapp_helpers import BOT_TOKEN, app_settings, init_data
from tests.test_demo import _env, _upgrade_and_start


def _wait_healthy(base: str, proc) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1].decode()
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("vasooli web did not answer /healthz")


@pytest.mark.e2e
def test_vasooli_web_serves_the_mini_app_and_the_webhooks(tmp_path):
    with listen_socket("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = _env() | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}",
        "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "twilio-token",
        "PUBLIC_BASE_URL": base,
        "PORT": str(port),
    }
    proc = _upgrade_and_start(tmp_path, env, "web")
    try:
        _wait_healthy(base, proc)
        entry = httpx.get(f"{base}/app/", timeout=10)
        assert entry.status_code == 200 and 'id="login-form"' in entry.text
        assert httpx.get(f"{base}/app/static/app.js", timeout=10).status_code == 200
        # Signed with the bot's token, so it passes the hash check and reaches the database.
        stranger = httpx.post(f"{base}/app/auth", data={"initData": init_data(4343)}, timeout=10)
        assert stranger.status_code == 401 and "not staff here" in stranger.text
        forged = init_data(4343, token="1:other")
        assert (
            "did not check out"
            in httpx.post(f"{base}/app/auth", data={"initData": forged}, timeout=10).text
        )
        unsigned = httpx.post(f"{base}/twilio/status", data={"MessageSid": "SM1"}, timeout=10)
        assert unsigned.status_code == 403
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_the_demo_banner_links_to_the_dashboards_signed_in(committed, database_url):
    with committed() as session:
        staff = make_staff(session, role=Role.MANAGER, name="Demo Manager")
        staff.password_hash = "x"
        open_session(session, staff)
        session.commit()
    person = DemoPerson("manager", Role.MANAGER, staff.name, staff.telegram_user_id, "pw")
    settings = app_settings(database_url, public_base_url="http://127.0.0.1:8765")
    line = miniapp_line(SimpleNamespace(people=(person,)), settings)
    assert "as Demo Manager: http://127.0.0.1:8765/app/?initData=" in line
    url = urlsplit(line.split(": ", 1)[1])
    app = with_miniapp(settings, committed)(Starlette())
    with TestClient(app) as client:
        page = client.get(f"{url.path}?{url.query}")
        assert page.status_code == 200 and 'id="login-form"' in page.text
        init = dict(p.split("=", 1) for p in url.query.split("&"))["initData"]
        signed_in = client.post("/app/auth", data={"initData": unquote(init)})
        assert signed_in.status_code == 200 and signed_in.url.path == "/app/portfolio"
