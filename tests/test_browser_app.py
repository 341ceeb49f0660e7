"""Every page of ``capplan app`` in headless Chromium, on 127.0.0.1.

The test serves a store it fills itself with the real ``capplan app``
command and opens each page by its ``?page=`` URL. On each page it checks the
title, a key element and that no exception box is shown, and it saves a
screenshot to test-artifacts/browser/. With CAPPLAN_UPDATE_SCREENSHOTS=1 it
also copies them to docs/screenshots/ for the docs; otherwise a test run
leaves the tracked images alone. At the end it types a DROP into the SQL page. It drives Debian's chromium through Debian's chromedriver with
selenium, which downloads no browser.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_app import PAGE_TITLES, add_history_and_forecast, add_plan, add_step_run

from capplan.cli.app_cmd import stop_app, wait_until_serving
from capplan.store import Store
from conftest import require_binary

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("CAPPLAN_UPDATE_SCREENSHOTS") == "1"
CAPPLAN_SCRIPT = Path(sys.executable).parent / "capplan"
STARTUP_TIMEOUT_S = 60.0
PAGE_TIMEOUT_S = 30.0
POLL_S = 0.1
# Chart drawing is asynchronous in the browser, so the screenshot waits a little after the page settles.
SETTLE_S = 0.75
WINDOW = "1400,1000"

KEY_TEXT = {
    "overview": "Runway (UTC date)",
    "demand": "Latest daily peak",
    "load-tests": "Breaking point",
    "plan": "Download CSV",
    "scenarios": "Extra growth",
    "bottlenecks": "capplan analyze --prometheus URL",
    "sql": "Run query",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served_app(tmp_path: Path) -> Iterator[str]:
    """Fill a store and serve it with ``capplan app`` on a free port; yield the URL."""
    store = Store(tmp_path / "capplan.duckdb")
    run_id = add_step_run(store, saturated_step=None)
    add_plan(store, run_id, add_history_and_forecast(store))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "app.log").open("w")
    process = subprocess.Popen(
        [str(CAPPLAN_SCRIPT), "app", "--port", str(port), "--db", str(store.path), "--json"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_serving(url, STARTUP_TIMEOUT_S, process=process)  # type: ignore[arg-type]
        yield url
    finally:
        stop_app(process)  # type: ignore[arg-type]
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    chromium = require_binary("chromium", "/usr/bin/chromium")
    chromedriver = require_binary("chromedriver", "/usr/bin/chromedriver")
    # selenium is a test dependency; outside CI a machine without it skips, like one without chromium.
    if os.environ.get("CI") != "true":
        pytest.importorskip("selenium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        f"--window-size={WINDOW}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_page(driver: object, title: str, key_text: str) -> str:
    """Wait until the page shows ``title`` as its h1 and ``key_text``, and streamlit has stopped running.

    Returns the page's text. Waiting for the key text too matters under load, where the heading
    can show before the script run has drawn the rest of the page.
    """
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + PAGE_TIMEOUT_S
    body = ""
    while time.monotonic() < deadline:
        headings = [element.text for element in driver.find_elements(By.CSS_SELECTOR, "h1")]  # type: ignore[attr-defined]
        running = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]')  # type: ignore[attr-defined]
        body = driver.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
        if title in headings and key_text in body and not running:
            time.sleep(SETTLE_S)
            return str(driver.find_element(By.TAG_NAME, "body").text)  # type: ignore[attr-defined]
        time.sleep(POLL_S)
    raise AssertionError(f"page {title!r} did not show {key_text!r} within {PAGE_TIMEOUT_S:g} s; it showed: {body[:2000]}")


@pytest.mark.slow
def test_browser_every_page(served_app: str, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for slug, title in PAGE_TITLES.items():
        browser.get(f"{served_app}/?page={slug}")  # type: ignore[attr-defined]
        body = wait_for_page(browser, title, KEY_TEXT[slug])

        exceptions = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')  # type: ignore[attr-defined]
        assert exceptions == [], f"{slug}: {[element.text for element in exceptions]}"
        assert KEY_TEXT[slug] in body, slug
        assert "Traceback" not in body, slug
        shot = ARTIFACTS / f"{slug}.png"
        assert browser.save_screenshot(str(shot)), slug  # type: ignore[attr-defined]
        if UPDATE_SCREENSHOTS:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOTS / f"{slug}.png")

    # Still on the SQL page: a DROP typed into the query box is rejected with the guard's message.
    box = browser.find_element(By.CSS_SELECTOR, "textarea")  # type: ignore[attr-defined]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("DROP TABLE runs")
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    buttons = browser.find_elements(By.TAG_NAME, "button")  # type: ignore[attr-defined]
    [run] = [button for button in buttons if button.text.strip().endswith("Run query")]
    run.click()
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    body = ""
    while time.monotonic() < deadline and "DROP statements are rejected" not in body:
        time.sleep(POLL_S)
        body = browser.find_element(By.TAG_NAME, "body").text  # type: ignore[attr-defined]
    assert "DROP statements are rejected" in body
    browser.save_screenshot(str(ARTIFACTS / "sql-rejected.png"))  # type: ignore[attr-defined]
