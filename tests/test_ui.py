"""The dashboard (/ui/): its files are served without a token and ship in the package; in a real
browser (Debian's chromium driven by Playwright) it signs in with a token, lists, starts,
cancels and retries jobs of a real stack whose gunicorn gateway has API_TOKENS set.

One store only (sqlite): the page reads the JSON API, which the other tests cover on both.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from async_api.resources.ui import UI_DIR
from tests.support.in_process import offline_gateway
from tests.support.processes import ROOT
from tests.support.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")  # scripts/ensure-chromium installs it (make test)
ARTIFACTS = ROOT / "test-artifacts"  # ignored by git: the screenshots of the last run
TOKEN = "ui-test-token"
JOB_SECONDS = 20_000  # ms a job gets to reach a state on the page (the machine may be loaded)
expect.set_options(timeout=10_000)  # ms for anything else the page shows (default 5 s)


@pytest.fixture
def client():
    return offline_gateway(api_tokens=(TOKEN,))


@pytest.mark.parametrize(("path", "content_type"), [
    ("/ui/", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")])
def test_the_page_and_its_files_need_no_token(client, path, content_type):
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith(content_type)
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert "connect-src 'self'" in answer.headers["Content-Security-Policy"]


def test_ui_redirects_to_the_page_and_look_alikes_and_the_api_need_a_token(client):
    assert client.get("/ui").status_code == 308
    assert client.get("/ui").headers["Location"].endswith("/ui/")
    for path in ("/uix", "/ui.json", "/jobs"):
        assert client.get(path).status_code == 401, path


def test_the_page_loads_nothing_from_elsewhere():
    for file in UI_DIR.iterdir():
        assert "://" not in file.read_text(), f"{file.name} names another host"


def test_the_package_data_ships_every_file_of_the_page():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    patterns = setup["options.package_data"]["async_api"].split()
    package = UI_DIR.parent
    for file in UI_DIR.rglob("*"):
        shipped = file.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(shipped, p) for p in patterns), f"{shipped} is not shipped"


# --- in a real browser -----------------------------------------------------------------------


class Gateway:
    """The stack's gunicorn gateway, as the test's own API client (with the token)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.auth = {"Authorization": f"Bearer {TOKEN}"}

    def begin(self, job_id: str, body: dict) -> None:
        answer = requests.post(f"{self.url}/begin", params={"id": job_id}, json=body,
                               headers=self.auth, timeout=10)
        assert answer.status_code == 202, answer.text

    def job(self, job_id: str) -> dict:
        answer = requests.get(f"{self.url}/jobs/{job_id}", headers=self.auth, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def gateway(make_stack: Callable[..., Stack]) -> Gateway:
    stack = make_stack("sqlite")
    stack.engine.start()
    stack.start_worker("worker")
    return Gateway(stack.start_gateway({"API_TOKENS": TOKEN}, workers=1).url)


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """Into the test's tmp dir, copied to test-artifacts/ (whose path the test prints)."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    return Path(shutil.copy(shot, ARTIFACTS / name))


@pytest.fixture
def page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Page]:
    """A chromium tab; the page's script must raise nothing and the browser refuse nothing
    (a CSP violation is a console error). Its last state is saved as ui.png, pass or fail."""
    assert CHROMIUM.exists(), "chromium is missing: run scripts/ensure-chromium"
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox"])  # root may not sandbox
        tab = browser.new_page(viewport={"width": 1100, "height": 800})
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.on("console", lambda message: errors.append(message.text)
               if message.type == "error" and "Failed to load resource" not in message.text
               else None)
        tab.on("dialog", lambda dialog: dialog.accept())  # "Cancel job ...?"
        try:
            yield tab
        finally:
            shots = [save_screenshot(tab, tmp_path, "ui.png")]
            shots += sorted(ARTIFACTS.glob("ui-*.png"))
            browser.close()
            with capsys.disabled():
                print("\nscreenshots:", *shots)
    assert not errors, errors


def sign_in(page: Page, token: str) -> None:
    page.fill("#token", token)
    page.click("#token-form button")


def row(page: Page, job_id: str):
    return page.locator(f'#jobs tr[data-job-id="{job_id}"]')


def open_job(page: Page, job_id: str) -> None:
    row(page, job_id).locator("a").click()
    expect(page.locator("#job-title")).to_contain_text(job_id)


def title_status(page: Page):
    return page.locator("#job-title .status")


def test_the_dashboard_signs_in_lists_starts_and_cancels_jobs(gateway, page, nonce, tmp_path):
    page.goto(f"{gateway.url}/ui")
    expect(page.locator("#message")).to_have_text("This gateway needs a token.")
    sign_in(page, "not-the-token")
    expect(page.locator("#message")).to_contain_text("refused this token")
    sign_in(page, TOKEN)
    expect(page.locator("#list-view")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('async-api.token')") == TOKEN
    assert page.evaluate("localStorage.length") == 0

    # Started from the page; auto-refresh shows it succeed.
    done = f"ui-done-{nonce}"
    page.click("#begin summary")
    page.fill("#begin-id", done)
    page.fill("#begin-body", json.dumps({"nonce": nonce}))
    page.click("#begin-form button")
    expect(page.locator("#message")).to_have_text(f"Started job {done}.")
    expect(row(page, done).locator(".status")).to_have_text("succeeded", timeout=JOB_SECONDS)
    open_job(page, done)
    expect(page.locator("#job-outcome-title")).to_have_text("Result")
    expect(page.locator("#job-outcome")).to_contain_text("Processed: {\\\"nonce\\\"")
    expect(page.locator("#cancel")).to_be_hidden()
    save_screenshot(page, tmp_path, "ui-job.png")

    # A job that sleeps durably for 30 s is canceled with the button.
    held = f"ui-held-{nonce}"
    gateway.begin(held, {"sleep": 30, "nonce": nonce})
    page.goto(f"{gateway.url}/ui/#/jobs/{held}")
    expect(title_status(page)).to_have_text("running")
    page.click("#cancel")
    expect(title_status(page)).to_have_text("canceled")
    expect(page.locator("#cancel")).to_be_hidden()
    assert gateway.job(held)["status"] == "canceled"

    # A failed job shows its reason.
    failed = f"ui-failed-{nonce}"
    gateway.begin(failed, {"fail": "why", "nonce": nonce})
    page.goto(f"{gateway.url}/ui/#/jobs/{failed}")
    expect(title_status(page)).to_have_text("failed", timeout=JOB_SECONDS)
    expect(page.locator("#job-outcome-title")).to_have_text("Error")
    expect(page.locator("#job-outcome")).to_contain_text("why")

    # The status filter, and paging with next_cursor: 5 jobs a page, 6 jobs.
    for n in range(3):
        gateway.begin(f"ui-more-{n}-{nonce}", {"n": n, "nonce": nonce})
    page.click("text=All jobs")
    page.select_option("#state", "rejected")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(row(page, failed)).to_be_visible()
    page.select_option("#state", "")
    page.select_option("#limit", "5")
    expect(page.locator("#jobs tbody tr")).to_have_count(5)
    expect(page.locator("#newer")).to_be_disabled()
    page.click("#older")
    expect(page.locator("#page-number")).to_have_text("page 2")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(row(page, done)).to_be_visible()  # the oldest
    page.click("#newer")
    expect(page.locator("#jobs tbody tr")).to_have_count(5)

    page.click("#forget-token")
    expect(page.locator("#token-view")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    sign_in(page, TOKEN)  # the screenshot shows the list
    expect(page.locator("#jobs tbody tr")).to_have_count(5)
