"""A real browser on the real service: log in, open a job report, no console errors.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``, installed by ``.ci/run``)
driven with Selenium; the service runs under uvicorn in a thread on a free port, on SQLite.
The screenshot is kept as ``test-artifacts/ui-job-page.png`` (gitignored).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from grait_engine.reporting.render import PNG_MAGIC
from tests.app.helpers import new_key
from tests.app.ui_jobs import add_job, finished_jobs

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
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
    "--window-size=1280,1000",
)


@pytest.fixture(scope="session")
def job_folders(tmp_path_factory: pytest.TempPathFactory, tiny_world: Any) -> dict[str, Path]:
    return finished_jobs(tmp_path_factory.getbasetemp() / "ui_jobs", tiny_world)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, FastAPI]]:
    """(base URL, app) of the service running under uvicorn in a background thread."""
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=sqlite_url))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=15)
    app.state.engine.dispose()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium through chromedriver, with a fresh profile; skips without them."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait_for(browser, url: str) -> None:
    """Wait until the browser has navigated to ``url`` (a click returns before that)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(browser, 30).until(expected_conditions.url_to_be(url))
    except TimeoutException:
        pytest.fail(f"not at {url} but {browser.current_url}: {browser.page_source[:2000]}")
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def test_browser_logs_in_and_shows_a_report(
    served: tuple[str, FastAPI], browser, job_folders: dict[str, Path]
) -> None:
    from selenium.webdriver.common.by import By

    base, app = served
    key, tenant = new_key(app)
    job_id = add_job(app, tenant, job_folders["grait"])
    browser.get(f"{base}/ui/jobs")  # no cookie yet: redirected to the login form
    assert browser.current_url == f"{base}/ui/login"
    browser.find_element(By.ID, "api_key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait_for(browser, f"{base}/ui/jobs")
    browser.find_element(By.CSS_SELECTOR, f'a[href="/ui/jobs/{job_id}"]').click()
    _wait_for(browser, f"{base}/ui/jobs/{job_id}")
    sections = [s.get_attribute("id") for s in browser.find_elements(By.TAG_NAME, "section")]
    assert sections == [
        "results",
        "plane",
        "curves",
        "correctness",
        "weights",
        "timeline",
        "config",
    ]
    figures = browser.find_elements(By.CSS_SELECTOR, "section figure svg")
    assert len(figures) == 5 and all(f.size["width"] > 200 for f in figures)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 100, 8000))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "ui-job-page.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000
