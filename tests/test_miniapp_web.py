"""`vasooli web` serves the Mini App at /app/ next to Twilio's webhooks, on one port."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from scheduler.serve import listen_socket
from tests.miniapp_helpers import BOT_TOKEN, init_data
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
