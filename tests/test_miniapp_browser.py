"""The Mini App in a real browser: Debian's headless Chromium, driven by selenium.

The app runs with uvicorn on a free localhost port in a thread; the browser signs in with a
valid initData (the ?initData= way in, as the demo does), opens every page at a phone's
360 px, checks the figures against the database's services, and saves a screenshot of each
page under the test's tmp path (and in $VASOOLI_SCREENSHOTS when set).

Skipped only when Chromium is absent outside CI; in CI (CI=true) a missing browser fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
import uvicorn

from db import clock
from db.agency import DEFAULT
from db.money import format_money
from db.services import dashboards
from db.services.reports import collections_by_day
from db.services.staff.sessions import open_session
from tests.dashboard_data import NOW, make_agency
from tests.factories import actor
from tests.miniapp_helpers import app_settings, init_data, mounted, set_clock

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HAVE_BROWSER = Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()
IN_CI = os.environ.get("CI") == "true"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
MEERA = 7_200_001
DARK = {
    "bg_color": "#17212b",
    "secondary_bg_color": "#232e3c",
    "text_color": "#f5f5f5",
    "hint_color": "#708499",
    "link_color": "#6ab3f3",
    "button_color": "#5288c1",
    "button_text_color": "#ffffff",
}

pytestmark = pytest.mark.skipif(
    not HAVE_BROWSER and not IN_CI, reason="chromium and chromium-driver are not installed"
)


def test_ci_has_the_browser():
    """In CI the browser test must run: .ci/run installs chromium and chromium-driver."""
    assert HAVE_BROWSER, f"CI needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium)"


@pytest.fixture
def world(committed):
    set_clock(NOW)
    with committed() as session:
        agency = make_agency(session, telegram_ids=(MEERA, None, None, None))
        agency.manager.password_hash = "x"
        open_session(session, agency.manager)
        session.commit()
    return agency


@pytest.fixture
def server(world, committed, database_url) -> Iterator[str]:
    """The Mini App mounted at /app, served by uvicorn on a free port; yields its base URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    app = mounted(app_settings(database_url), committed)
    config = uvicorn.Config(app, log_config=None, lifespan="off", access_log=False)
    web = uvicorn.Server(config)
    web.capture_signals = nullcontext  # type: ignore[method-assign]  # not the main thread
    thread = threading.Thread(target=web.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not web.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert web.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        web.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_experimental_option(
        "mobileEmulation", {"deviceMetrics": {"width": 360, "height": 780, "pixelRatio": 1}}
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path) -> list[Path]:
    folders = [tmp_path / "screenshots"]
    if os.environ.get("VASOOLI_SCREENSHOTS"):
        folders.append(Path(os.environ["VASOOLI_SCREENSHOTS"]))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def _shoot(driver, folders: list[Path], name: str) -> None:
    for folder in folders:
        assert driver.save_screenshot(str(folder / f"{name}.png"))


def _text(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def _page_width(driver) -> int:
    """The widest of the page's content (an overflowing table widens the document)."""
    return driver.execute_script(
        "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth,"
        " ...[...document.querySelectorAll('main > *')].map(e => e.getBoundingClientRect().right))"
    )


def _only_local_requests(driver, base: str) -> list[str]:
    names = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    return [n for n in names if not n.startswith(base)]


def _sign_in(driver, base: str, theme: dict[str, str] | None = None) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    url = f"{base}/app/?initData={quote(init_data(MEERA))}"
    if theme:
        url += "#tgWebAppThemeParams=" + quote(json.dumps(theme))
    driver.get(url)
    WebDriverWait(driver, 15).until(lambda d: d.current_url.endswith("/app/portfolio"))


def money(amount: Decimal) -> str:
    return format_money(amount, DEFAULT)


def _expected(committed, world) -> dict[str, object]:
    """The figures the pages must show, asked of the services on the database."""
    me = actor(world.manager)
    tz = app_settings("sqlite://").tz
    today = clock.today(tz)
    with committed() as session:
        view = dashboards.overview(session, actor=me, today=today, tz=tz)
        days = collections_by_day(session, actor=me, today=today, tz=tz, days=30)
        scores = dashboards.leaderboard(session, actor=me, today=today, tz=tz)
        sms = dashboards.delivery_overview(session, actor=me, now=clock.utcnow())
    return {
        "view": view,
        "buckets": dashboards.dpd_buckets(view.book),
        "collected_30": sum((a for _, a in days), Decimal("0")),
        "scores": scores,
        "sms": sms,
    }


def test_every_page_in_chromium_shows_the_databases_figures(
    server, browser, shots, committed, world
):
    want = _expected(committed, world)
    _sign_in(browser, server)
    view = want["view"]
    assert _text(browser, "#outstanding") == money(view.book.outstanding) == "₹19,000.00"
    assert _text(browser, "#collected-month") == money(view.collected_month)
    assert _text(browser, "#collected-last-month") == money(view.collected_last_month)
    assert _text(browser, "#loans-active") == str(view.book.loans_active)
    checks = {
        "portfolio": [],
        "dpd": [
            (f'tr[data-bucket="{b.label}"] .amount', money(b.outstanding)) for b in want["buckets"]
        ],
        "collections": [("#total", money(want["collected_30"]))],
        "agents": [
            (f'tr[data-agent="{s.name}"] .collected', money(s.collected_month))
            for s in want["scores"]
        ]
        + [(f'tr[data-agent="{s.name}"] .kept', str(s.promises_kept)) for s in want["scores"]],
        "deliveries": [
            ("#rate", f"{want['sms'].delivery_rate} %"),
            ("#segments", str(want["sms"].segments)),
        ],
        "loans": [('tr[data-loan="D-001"] .amount', money(world.loans[0].outstanding))],
    }
    for page, pairs in checks.items():
        browser.get(f"{server}/app/{page}")
        assert browser.find_elements("css selector", "main h1"), page
        for css, expected in pairs:
            assert _text(browser, css) == expected, (page, css)
        assert _page_width(browser) <= 360, f"{page} is wider than 360 px"
        assert _only_local_requests(browser, server) == [], page
        _shoot(browser, shots, page)
    assert sorted(p.name for p in shots[0].iterdir()) == sorted(f"{p}.png" for p in checks)


def test_the_theme_comes_from_telegram_and_a_forged_sign_in_is_refused(server, browser, shots):
    _sign_in(browser, server, theme=DARK)
    style = "return getComputedStyle(document.body).backgroundColor"
    assert browser.execute_script(style) == "rgb(23, 33, 43)"  # #17212b, kept across pages
    browser.get(f"{server}/app/agents")
    assert browser.execute_script(style) == "rgb(23, 33, 43)"
    _shoot(browser, shots, "agents-dark")
    browser.delete_all_cookies()
    forged = init_data(MEERA, token="123456:not-the-bots-token")
    browser.get(f"{server}/app/?initData={quote(forged)}")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 15).until(lambda d: d.current_url.endswith("/app/auth"))
    assert "did not check out" in _text(browser, "#refusal")
    _shoot(browser, shots, "refused")
