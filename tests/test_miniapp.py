"""The Mini App over HTTP (Starlette's TestClient): Telegram sign-in, refusals, every page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from bot.miniapp.auth import cookie_key, make_cookie, read_cookie
from db import clock
from db.config import SettingsError
from db.models import StaffState
from db.services.staff.sessions import end_sessions, open_session
from tests.dashboard_data import NOW, make_agency
from tests.factories import make_borrower, make_loan
from tests.miniapp_helpers import BOT_TOKEN, app_settings, init_data, mounted, set_clock

MEERA, ARUN, ASHA, BALA = 7_100_001, 7_100_002, 7_100_003, 7_100_004


@pytest.fixture
def world(committed):
    """The hand-worked agency, committed, every staff member logged in to the bot."""
    set_clock(NOW)
    with committed() as session:
        agency = make_agency(session, telegram_ids=(MEERA, ARUN, ASHA, BALA))
        for staff in (agency.manager, agency.admin, agency.asha, agency.bala):
            staff.password_hash = "x"  # logged in with a password, as the bot requires
            open_session(session, staff)
        session.commit()
    return agency


@pytest.fixture
def client(world, committed, database_url):
    settings = app_settings(database_url)
    with TestClient(mounted(settings, committed), base_url="http://testserver") as c:
        yield c


def sign_in(client: TestClient, user_id: int, **kw):
    return client.post("/app/auth", data={"initData": init_data(user_id, **kw)})


def test_a_manager_signs_in_and_gets_a_short_httponly_cookie(client):
    response = sign_in(client, MEERA, **{})
    assert response.status_code == 200 and response.url.path == "/app/portfolio"
    cookie = response.history[0].headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/app/" in cookie
    assert "Max-Age=1800" in cookie
    assert 'id="outstanding">₹19,000.00<' in response.text
    assert 'id="collected-month">₹1,000.00<' in response.text
    assert 'id="collected-last-month">₹200.00<' in response.text


def test_an_admin_signs_in_too(client):
    assert sign_in(client, ARUN).url.path == "/app/portfolio"


def test_a_forged_hash_is_refused(client):
    forged = init_data(MEERA, token="123456:someone-elses-token")
    response = client.post("/app/auth", data={"initData": forged})
    assert response.status_code == 401
    assert "did not check out" in response.text
    assert "set-cookie" not in response.headers
    assert client.get("/app/portfolio").status_code == 401


def test_a_changed_field_breaks_the_hash(client):
    good = init_data(MEERA)
    tampered = good.replace(str(MEERA), str(ARUN))
    assert client.post("/app/auth", data={"initData": tampered}).status_code == 401


def test_stale_init_data_is_refused(client):
    old = clock.utcnow() - timedelta(seconds=301)
    response = sign_in(client, MEERA, auth_date=old)
    assert response.status_code == 401 and "too old" in response.text
    assert sign_in(client, MEERA, auth_date=clock.utcnow() - timedelta(seconds=299)).is_success


def test_missing_or_malformed_init_data_is_refused(client):
    assert client.post("/app/auth", data={}).status_code == 401
    assert client.post("/app/auth", data={"initData": "not=valid&hash=zz"}).status_code == 401
    doubled = init_data(MEERA) + "&user=%7B%22id%22%3A1%7D"
    assert client.post("/app/auth", data={"initData": doubled}).status_code == 401


def test_a_page_session_replayed_after_it_expired_is_refused(client):
    assert sign_in(client, MEERA).status_code == 200
    set_clock(NOW + timedelta(minutes=31))
    response = client.get("/app/portfolio")
    assert response.status_code == 401 and "session has ended" in response.text
    # The same cookie sent by hand is refused too: the expiry is inside the signed value.
    raw = client.cookies.get("vasooli_app")
    assert raw and read_cookie(raw, cookie_key(BOT_TOKEN), now=clock.utcnow()) is None


def test_a_cookie_with_a_longer_expiry_but_old_signature_is_refused(client):
    sign_in(client, MEERA)
    staff_id, session_id, uid, expires, mac = client.cookies.get("vasooli_app").split(".")
    client.cookies.set("vasooli_app", f"{staff_id}.{session_id}.{uid}.{int(expires) + 9999}.{mac}")
    assert client.get("/app/portfolio").status_code == 401


def test_an_agent_is_refused_with_403(client):
    response = sign_in(client, ASHA)
    assert response.status_code == 403
    assert "for managers and admins" in response.text
    assert "set-cookie" not in response.headers


def test_a_revoked_bot_session_closes_the_dashboards(client, committed, world):
    assert sign_in(client, MEERA).status_code == 200
    with committed() as session:
        end_sessions(session, world.manager.id)  # /logout in the bot
        session.commit()
    response = client.get("/app/portfolio")
    assert response.status_code == 401 and "log in" in response.text.lower()
    with committed() as session:
        open_session(session, session.merge(world.manager))  # logged in again
        session.commit()
    # The old page session belonged to the ended bot session: still refused.
    assert client.get("/app/portfolio").status_code == 401
    assert sign_in(client, MEERA).status_code == 200


def test_staff_without_a_bot_session_or_disabled_are_refused(client, committed, world):
    with committed() as session:
        end_sessions(session, world.admin.id)
        session.commit()
    response = sign_in(client, ARUN)
    assert response.status_code == 401 and "Please log in first." in response.text
    sign_in(client, MEERA)
    with committed() as session:
        session.merge(world.manager).state = StaffState.DISABLED
        session.commit()
    assert client.get("/app/portfolio").status_code == 401
    assert sign_in(client, 7_999_999).status_code == 401  # not staff at all


def test_every_page_shows_its_figures(client):
    sign_in(client, MEERA)
    dpd = client.get("/app/dpd").text
    assert '<tr data-bucket="31-60"><td>31-60</td><td class="num loans">1</td>' in dpd
    assert "₹2,000.00" in dpd and "47.4 %" in dpd
    collections = client.get("/app/collections?days=7").text
    assert 'id="total">₹1,000.00<' in collections
    agents = client.get("/app/agents").text
    assert '<tr data-agent="Asha"><td>Asha</td><td class="num collected">₹1,000.00</td>' in agents
    deliveries = client.get("/app/deliveries").text
    assert 'id="rate">50.0 %<' in deliveries and 'id="segments">8<' in deliveries
    assert 'data-code="30003"' in deliveries
    loans = client.get("/app/loans?filter=overdue").text
    assert 'data-loan="D-002"' in loans and 'data-loan="D-001"' not in loans
    assert 'data-loan="D-005"' not in client.get("/app/loans?filter=all").text  # archived


def test_the_loan_list_filters_by_agent(client, world):
    sign_in(client, MEERA)
    text = client.get(f"/app/loans?filter=all&agent={world.bala.id}").text
    assert 'data-loan="D-003"' in text and 'data-loan="D-004"' in text
    assert 'data-loan="D-001"' not in text
    assert client.get("/app/loans?after=garbage").status_code == 400


def test_every_value_is_escaped(client, committed, world):
    with committed() as session:
        borrower = make_borrower(session, name="<script>alert(1)</script>")
        make_loan(session, agent=session.merge(world.asha), borrower=borrower, loan_number="X-1")
        session.commit()
    sign_in(client, MEERA)
    text = client.get("/app/loans?filter=all").text
    assert "<script>alert(1)</script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_entry_page_loads_nothing_from_the_internet(client):
    page = client.get("/app/")
    assert page.status_code == 200 and 'src="static/app.js"' in page.text
    assert "https://" not in page.text and "http://" not in page.text
    script = client.get("/app/static/app.js")
    assert script.status_code == 200 and "tgWebAppData" in script.text
    assert "https://" not in script.text


def test_the_entry_page_always_signs_in_afresh(client):
    sign_in(client, MEERA)
    response = client.get("/app/", follow_redirects=False)
    assert response.status_code == 200 and 'id="login-form"' in response.text
    assert sign_in(client, ARUN).text.count("Arun (admin)") == 1  # the new user, not Meera


def test_pages_run_only_their_own_script_and_style(client):
    sign_in(client, MEERA)
    for path in ("/app/", "/app/portfolio", "/app/auth"):
        response = client.get(path) if path != "/app/auth" else client.post(path, data={})
        csp = response.headers["content-security-policy"]
        assert (
            "script-src 'self'" in csp and "frame-ancestors 'self' https://web.telegram.org" in csp
        )
        assert response.headers["cache-control"] == "no-store"


def test_the_cookie_is_secure_behind_https(world, committed, database_url):
    settings = app_settings(database_url, public_base_url="https://vasooli.example")
    with TestClient(mounted(settings, committed), base_url="https://testserver") as c:
        response = c.post("/app/auth", data={"initData": init_data(MEERA)}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "Secure" in cookie and "SameSite=none" in cookie


def test_the_mini_app_needs_the_bot_token(database_url, committed):
    from bot.miniapp import build_app
    from db.config import Settings

    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN"):
        build_app(Settings(_env_file=None, database_url=database_url), committed)


def test_cookie_round_trip_and_tampering():
    from bot.miniapp.auth import PageSession

    key = cookie_key(BOT_TOKEN)
    page = PageSession(1, 2, 3, int(NOW.timestamp()) + 60)
    value = make_cookie(page, key)
    assert read_cookie(value, key, now=NOW) == page
    assert read_cookie(value, cookie_key("other"), now=NOW) is None
    assert read_cookie(value, key, now=NOW + timedelta(seconds=61)) is None
    assert read_cookie("", key, now=NOW) is None
