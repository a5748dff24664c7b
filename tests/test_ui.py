"""The dashboard (/ui/): its files are served without a token and ship in the package; in a real
browser (Debian's chromium driven by Playwright) it asks for a token, then lists, filters,
pages, starts, cancels and retries jobs, shows their progress and steps, and only the token's
principal's jobs, on a real stack (Resonate server, worker, gunicorn gateway with API_TOKENS).

One store only (sqlite): the page reads the JSON API, which the other tests cover on both.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from async_api.resources.ui import UI_DIR
from tests.support.in_process import offline_gateway
from tests.support.processes import ROOT, wait_until
from tests.support.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")  # scripts/ensure-chromium installs it (make test)
ARTIFACTS = ROOT / "test-artifacts"  # ignored by git: the screenshots of the last run
TOKENS = {"alice": "alice-token", "bob": "bob-token", "carol": "carol-token"}
TOKEN_KEY = "async-api.token"  # app.js keeps the token under this sessionStorage key
STEP_PAUSE = 1.5  # s each business step of the module's worker takes
REFRESH_MS = 2000  # app.js's REFRESH_MS: how often the page paints again while auto-refreshing
JOB_MS = 20_000  # ms a job gets to reach a state on the page (the machine may be loaded)
expect.set_options(timeout=10_000)  # ms for anything else the page shows (default 5 s)


@pytest.fixture
def client():
    return offline_gateway(api_tokens=tuple(TOKENS.values()))


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
    """The module's gunicorn gateway, as the test's own API client with a principal's token."""

    def __init__(self, url: str) -> None:
        self.url = url

    def request(self, method: str, path: str, who: str = "alice", **kwargs: Any) -> dict:
        answer = requests.request(method, f"{self.url}{path}", timeout=10,
                                  headers={"Authorization": f"Bearer {TOKENS[who]}"}, **kwargs)
        assert answer.ok, answer.text
        return answer.json()

    def begin(self, job_id: str, body: dict, who: str = "alice") -> None:
        self.request("POST", "/begin", who, params={"id": job_id}, json=body)

    def job(self, job_id: str) -> dict:
        return self.request("GET", f"/jobs/{job_id}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A server, a worker whose steps each take STEP_PAUSE s (so that an order's progress shows
    while it runs) and a gunicorn gateway whose tokens name three principals."""
    stack = Stack(tmp_path_factory.mktemp("ui-stack"))
    try:
        stack.engine.start()
        stack.start_worker("worker", env={"STEP_PAUSE_SECONDS": str(STEP_PAUSE)})
        tokens = ",".join(f"{name}:{token}" for name, token in TOKENS.items())
        # a quote answers 202 at once: no worker of group pricing runs here
        yield Gateway(stack.start_gateway({"API_TOKENS": tokens, "QUOTE_TIMEOUT_SECONDS": "0.1"},
                                          workers=1).url)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "chromium is missing: run scripts/ensure-chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox"])  # root may not sandbox
        yield launched
        launched.close()


def save_screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """Into the test's tmp dir, copied to test-artifacts/ (the test prints where)."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    return Path(shutil.copy(shot, ARTIFACTS / name))


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path,
         capsys: pytest.CaptureFixture[str]) -> Iterator[Page]:
    """A fresh tab (empty sessionStorage). The page's script must raise nothing and the browser
    refuse nothing (a CSP violation is a console error). Its last state is saved as
    ui-<test>.png, pass or fail."""
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    tab = context.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: errors.append(message.text)
           if message.type == "error" and "Failed to load resource" not in message.text
           else None)
    tab.on("dialog", lambda dialog: dialog.accept())  # "Cancel job ...?"
    try:
        yield tab
    finally:
        name = request.node.name.removeprefix("test_")[:60]
        shot = save_screenshot(tab, tmp_path, f"ui-{name}.png")
        context.close()
        with capsys.disabled():
            print(f"\nscreenshot: {shot}")
    assert not errors, errors


def sign_in(page: Page, token: str) -> None:
    page.fill("#token", token)
    page.click("#token-form button")


def open_dashboard(page: Page, gateway: Gateway, who: str = "alice", at: str = "") -> None:
    page.goto(f"{gateway.url}/ui/{at}")
    sign_in(page, TOKENS[who])
    expect(page.locator("#token-view")).to_be_hidden()


def row(page: Page, job_id: str) -> Locator:
    return page.locator(f'#jobs tr[data-job-id="{job_id}"]')


def open_job(page: Page, job_id: str) -> None:
    page.click(f'a[href="#/jobs/{quote(job_id, safe="")}"]')
    expect(page.locator("#job-title")).to_contain_text(job_id)


def title_status(page: Page) -> Locator:
    return page.locator("#job-title .status")


def fact(page: Page, label: str) -> Locator:
    return page.locator(f'#job-facts dd[data-fact="{label}"]')


def duration_shown(start: str, end: str) -> str:
    """What app.js's humanDuration shows for `start` to `end` (ISO times), under a minute."""
    ms = round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000)
    assert ms < 60_000, (start, end)
    if ms < 1000:
        return f"{max(0, ms)} ms"
    # toFixed(1) rounds a tie up (3.25 is "3.3"), Python's format to even
    return f"{(Decimal(ms) / 1000).quantize(Decimal('0.1'), ROUND_HALF_UP)} s"


def test_the_token_is_asked_for_kept_in_session_storage_and_forgotten(gateway, page):
    page.goto(f"{gateway.url}/ui")  # redirected to /ui/
    expect(page.locator("#message")).to_have_text("This gateway needs a token.")
    sign_in(page, "not-a-token")
    expect(page.locator("#message")).to_contain_text("refused this token")
    assert page.evaluate("sessionStorage.length") == 0
    sign_in(page, TOKENS["alice"])
    expect(page.locator("#list-view")).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == TOKENS["alice"]
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []

    page.click("#forget-token")
    expect(page.locator("#token-view")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_job_started_on_the_page_succeeds_with_its_arguments_and_steps(gateway, page, nonce,
                                                                         tmp_path):
    open_dashboard(page, gateway)
    done = f"ui-done-{nonce}"
    page.click("#begin summary")
    page.fill("#begin-id", done)
    page.fill("#begin-body", json.dumps({"nonce": nonce}))
    page.click("#begin-form button")
    expect(page.locator("#message")).to_have_text(f"Started job {done}.")
    expect(row(page, done).locator("td").nth(1)).to_have_text("foo")
    # auto-refresh shows it finish
    expect(row(page, done).locator(".status")).to_have_text("succeeded", timeout=JOB_MS)

    open_job(page, done)
    expect(page.locator("#job-outcome-title")).to_have_text("Result")
    expect(page.locator("#job-outcome")).to_contain_text('Processed: {\\"nonce\\"')
    expect(page.locator("#job-args")).to_contain_text(nonce)
    expect(fact(page, "Function")).to_have_text("foo")
    expect(fact(page, "Attempt")).to_have_text("1")
    expect(page.locator("#timeline li .step-name")).to_have_text(["foo_effect"])
    expect(page.locator("#timeline li .status")).to_have_text(["succeeded"])
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#retry")).to_be_hidden()
    save_screenshot(page, tmp_path, "ui-job.png")


def test_a_running_job_is_canceled_with_its_button_and_its_sleep_abandoned(gateway, page,
                                                                          nonce):
    held = f"ui-held-{nonce}"
    gateway.begin(held, {"sleep": 30, "nonce": nonce})  # waits durably for 30 s
    open_dashboard(page, gateway, at=f"#/jobs/{held}")
    expect(title_status(page)).to_have_text("running")
    expect(page.locator("#timeline li .step-kind")).to_have_text(["sleep"])
    expect(page.locator("#timeline li .status")).to_have_text(["running"])
    page.click("#cancel")
    expect(page.locator("#message")).to_have_text(f"Canceled {held}.")
    expect(title_status(page)).to_have_text("canceled")
    expect(page.locator("#cancel")).to_be_hidden()
    job = gateway.job(held)
    assert job["status"] == "canceled"

    # the engine keeps the sleep pending; the page shows it will never run on, and stops its
    # clock at the cancel: after a refresh or two it still shows the sleep's time until then
    sleep = page.locator("#timeline li")
    expect(sleep).to_have_attribute("data-status", "abandoned")
    expect(sleep.locator(".status")).to_have_text("abandoned")
    [step] = gateway.request("GET", f"/jobs/{held}/steps")["steps"]
    assert step["status"] == "pending"
    page.wait_for_timeout(REFRESH_MS + 500)  # a clock still running to now has moved on
    expect(sleep.locator(".step-duration")).to_have_text(
        duration_shown(step["created_at"], job["completed_at"]))


def test_a_canceled_jobs_sleep_stays_abandoned_once_its_timer_fires(gateway, page, nonce):
    """The engine resolves a sleep at its time, its job canceled or not: the page showed the
    canceled job's sleep succeeded, ending after the job, once that time had passed."""
    held = f"ui-woken-{nonce}"
    gateway.begin(held, {"sleep": 2, "nonce": nonce})

    def steps() -> list[dict]:
        return gateway.request("GET", f"/jobs/{held}/steps")["steps"]
    wait_until(steps, 20, "the sleep to begin")
    job = gateway.request("POST", f"/jobs/{held}/cancel")
    [step] = wait_until(lambda: [s for s in steps() if s["status"] == "resolved"], 20,
                        "the sleep's timer to fire")
    assert step["completed_at"] > job["completed_at"]
    open_dashboard(page, gateway, at=f"#/jobs/{held}")
    sleep = page.locator("#timeline li")
    expect(sleep).to_have_attribute("data-status", "abandoned")
    expect(sleep.locator(".step-duration")).to_have_text(
        duration_shown(step["created_at"], job["completed_at"]))


def test_a_job_nobody_owns_offers_no_cancel(gateway, page, nonce):
    """A quote is shared, owned by nobody: only an admin may cancel it (403 to others), so
    the page offers alice no button that can only fail."""
    quote_job = gateway.request("POST", "/price-quote", json={"sku": f"ui-{nonce[:12]}",
                                                              "qty": 1})["job_id"]
    open_dashboard(page, gateway, at=f"#/jobs/{quote(quote_job, safe='')}")
    expect(title_status(page)).to_have_text("running")
    expect(page.locator("#cancel")).to_be_hidden()


def test_an_id_with_a_slash_is_not_asked_for(gateway, page, nonce):
    """The gateway decodes %2F: /jobs/ID%2Fsteps would answer ID's steps, painted as a job."""
    job_id = f"ui-slash-{nonce}"
    gateway.begin(job_id, {"nonce": nonce})
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    open_dashboard(page, gateway)  # the token first: the page below asks the gateway nothing
    page.goto(f"{gateway.url}/ui/#/jobs/{job_id}/steps")
    expect(page.locator("#message")).to_contain_text("No job has this id.")
    expect(page.locator("#job-title")).to_have_text(f"{job_id}/steps")
    expect(page.locator("#job-facts")).to_be_empty()
    expect(page.locator("#timeline")).to_be_empty()
    page.goto(f"{gateway.url}/ui/#/jobs/{quote(job_id + '/steps', safe='')}")  # escaped alike
    expect(page.locator("#job-title")).to_have_text(f"{job_id}/steps")
    expect(page.locator("#message")).to_contain_text("No job has this id.")
    assert not [url for url in asked if job_id in url], asked


def test_a_failed_job_shows_its_reason_and_is_retried_with_its_button(gateway, page, nonce):
    failed = f"ui-failed-{nonce}"
    gateway.begin(failed, {"fail": "why", "nonce": nonce})
    open_dashboard(page, gateway, at=f"#/jobs/{failed}")
    expect(title_status(page)).to_have_text("failed", timeout=JOB_MS)
    expect(page.locator("#job-outcome-title")).to_have_text("Error")
    expect(page.locator("#job-outcome")).to_contain_text("why")

    page.click("#retry")
    attempt = f"{failed}:attempt-2"
    expect(page.locator("#job-title")).to_contain_text(attempt)
    expect(fact(page, "Attempt")).to_have_text("2")
    expect(fact(page, "Retry of")).to_have_text(failed)
    expect(title_status(page)).to_have_text("failed", timeout=JOB_MS)  # same body, same fate
    assert gateway.job(attempt)["retry_of"] == failed

    fact(page, "Retry of").locator("a").click()
    expect(fact(page, "Retried by")).to_have_text(attempt)
    expect(page.locator("#retry")).to_be_hidden()  # retried once already


def test_an_order_shows_its_progress_while_it_runs_and_after(gateway, page, nonce, tmp_path):
    order = f"ui-{nonce}"
    gateway.request("POST", "/jobs", json={"order_id": order, "items": ["pen"]})
    open_dashboard(page, gateway)
    progress = row(page, f"order:{order}").locator(".progress")
    expect(progress).to_contain_text(re.compile(r"(33|67) %"), timeout=JOB_MS)
    save_screenshot(page, tmp_path, "ui.png")
    expect(row(page, f"order:{order}").locator(".status")).to_have_text("succeeded",
                                                                        timeout=JOB_MS)

    open_job(page, f"order:{order}")
    expect(page.locator("#job-progress")).to_contain_text("100 %")
    expect(page.locator("#job-progress")).to_contain_text("ship done")
    expect(page.locator("#timeline li .step-name")).to_have_text([
        "order_step", "33 % validate done", "order_step", "67 % charge done", "order_step",
        "100 % ship done"])


def test_the_list_filters_by_status_and_pages_with_next_cursor(gateway, page, nonce):
    first = f"ui-page-0-{nonce}"
    gateway.begin(first, {"nonce": nonce}, who="carol")  # carol's jobs alone are listed
    failed = f"ui-page-failed-{nonce}"
    gateway.begin(failed, {"fail": "why", "nonce": nonce}, who="carol")
    for n in range(1, 5):
        gateway.begin(f"ui-page-{n}-{nonce}", {"n": n, "nonce": nonce}, who="carol")
    open_dashboard(page, gateway, who="carol")
    expect(page.locator("#jobs tbody tr")).to_have_count(6)

    page.select_option("#state", "rejected")
    expect(row(page, failed)).to_be_visible(timeout=JOB_MS)
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    page.select_option("#state", "")
    page.select_option("#limit", "5")
    expect(page.locator("#jobs tbody tr")).to_have_count(5)
    expect(page.locator("#newer")).to_be_disabled()
    page.click("#older")
    expect(page.locator("#page-number")).to_have_text("page 2")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(row(page, first)).to_be_visible()  # the oldest
    expect(page.locator("#older")).to_be_disabled()
    page.click("#newer")
    expect(page.locator("#jobs tbody tr")).to_have_count(5)


def test_the_list_filters_the_jobs_waiting_for_approval(gateway, page, nonce):
    order_id = f"UIW-{nonce}"
    gateway.request("POST", f"/orders/{order_id}/approve-and-ship")
    running = f"ui-sleep-{nonce}"
    gateway.begin(running, {"sleep": 30})
    open_dashboard(page, gateway)
    expect(row(page, running)).to_be_visible()
    page.select_option("#state", "waiting_for_approval")
    expect(row(page, f"order:{order_id}")).to_contain_text("waiting for approval")
    expect(row(page, running)).to_have_count(0)
    for job_id in (f"order:{order_id}", running):
        gateway.request("POST", f"/jobs/{job_id}/cancel")


def test_another_principals_jobs_are_neither_listed_nor_shown(gateway, page, nonce):
    bobs = f"ui-bob-{nonce}"
    gateway.begin(bobs, {"nonce": nonce}, who="bob")
    alices = f"ui-alice-{nonce}"
    gateway.begin(alices, {"nonce": nonce})
    open_dashboard(page, gateway)
    expect(row(page, alices)).to_be_visible()
    expect(row(page, bobs)).to_have_count(0)
    open_job(page, alices)
    page.goto(f"{gateway.url}/ui/#/jobs/{bobs}")
    expect(page.locator("#message")).to_contain_text("No job has this id.")
    # nothing of Alice's job, shown just before, stays under Bob's job's address
    expect(page.locator("#job-title")).to_have_text(bobs)
    expect(page.locator("#job-facts")).to_be_empty()
    expect(page.locator("#cancel")).to_be_hidden()
    expect(page.locator("#retry")).to_be_hidden()
    page.goto(f"{gateway.url}/ui/#/jobs/%E0%A4%A")  # a malformed escape: asked for as it is
    expect(page.locator("#message")).to_be_visible()
    expect(page.locator("#job-title")).to_have_text("%E0%A4%A")
