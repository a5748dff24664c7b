"""A Python client of the gateway's job API, for scripts and the `async-api` CLI.

Only `requests`: no Flask and nothing of the engine, so it runs wherever the service is reached
over HTTP. Every failure is a `ClientError`; an error answer of the API is an `ApiError` with the
code and message of its JSON body (`{"error": {"code", "message", "details"?}}`), of a subclass
per status a caller may want to handle on its own.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import requests

JobView = dict[str, Any]

# Seconds a request may take beyond what it asks the server to hold it (a long-poll).
REQUEST_TIMEOUT_SECONDS = 10.0
# A 503 carries Retry-After: the request is sent again this many times before Overloaded.
UNAVAILABLE_RETRIES = 3
# The longest Retry-After the client sleeps for; a longer one is cut to this.
MAX_RETRY_AFTER_SECONDS = 30.0
# What a long-poll asks the server to hold; the server grants at most LONG_POLL_MAX_SECONDS.
MAX_HOLD_SECONDS = 30.0
# Between polls that the server answered without holding them: first, and at most.
FIRST_BACKOFF_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 5.0
# An answer that came after this share of the granted hold was held (clocks differ slightly).
HELD_FRACTION = 0.9
# The status monitor's words for a job that has not settled yet.
RUNNING_STATUSES = ("NotStarted", "Running")
# A job view's words for the same (waiting_for_approval: pending, awaiting its webhook).
PENDING_STATUSES = ("pending", "waiting_for_approval")
SUCCEEDED = "resolved"
PAGE_SIZE = 100  # the largest page GET /jobs serves
DEFAULT_BODY: Any = object()  # `begin` without a body: the API's default


class ClientError(Exception):
    """Anything that kept a call from its answer: catch this one to catch them all."""

    job_id: str | None = None  # set by `begin`: the id it sent (its own when none was given)


class Unreachable(ClientError):
    """No HTTP answer at all: connection refused, reset or timed out."""


class NotTheApi(ClientError):
    """A success answer that is not the API's JSON: the URL names something else."""


class ApiError(ClientError):
    """The API answered with an error: its HTTP status and the code and message it sent."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.details = status, code, message, details


class Unauthorized(ApiError):
    """401: auth is on (API_TOKENS) and the token is missing or not one of them."""


class NotFound(ApiError):
    """404: no job has this id (or the route does not exist)."""


class Conflict(ApiError):
    """409: the id is taken by another body or principal (`conflict`), the job already finished
    (`already_settled`, on cancel), or it runs or succeeded (`not_retryable`, on retry)."""


class Overloaded(ApiError):
    """503 after the retries: the gateway is at capacity (`overloaded`) or cannot reach its
    engine (`engine_unavailable`)."""


class WaitTimeout(ClientError):
    """`wait` gave up: the job was still pending when its time was up. Not an API error: the
    job runs on, and `job` is its view as last seen."""

    def __init__(self, job_id: str, timeout: float, job: JobView | None) -> None:
        super().__init__(f"job {job_id} did not settle within {timeout:g} s")
        self.job_id, self.timeout, self.job = job_id, timeout, job


ERRORS_BY_STATUS: dict[int, type[ApiError]] = {401: Unauthorized, 404: NotFound, 409: Conflict,
                                              503: Overloaded}


def api_error(response: requests.Response) -> ApiError:
    """The typed error of an error answer; one that is not the API's JSON (a proxy's page)
    still gets a code and a message."""
    try:
        error = response.json()["error"]
        code, message, details = error["code"], error["message"], error.get("details")
    except (ValueError, KeyError, TypeError):
        code, message, details = f"http_{response.status_code}", (
            " ".join(response.text.split())[:200] or response.reason), None  # one line
    return ERRORS_BY_STATUS.get(response.status_code, ApiError)(
        response.status_code, code, message, details)


def retry_after_seconds(response: requests.Response, default: float) -> float:
    """Retry-After in seconds (delay-seconds; the HTTP-date form counts as `default`)."""
    try:
        return min(max(float(response.headers["Retry-After"]), 0.0), MAX_RETRY_AFTER_SECONDS)
    except (KeyError, ValueError):
        return default


def granted_hold(response: requests.Response) -> float:
    """How long the server said it would hold a long-poll (RFC 7240 Preference-Applied:
    wait=S); 0 from a server that does not long-poll. A held answer needs no pause after it:
    the hold did the waiting that Retry-After asks for."""
    applied = response.headers.get("Preference-Applied", "")
    name, _, seconds = applied.partition("=")
    try:
        return float(seconds) * HELD_FRACTION if name.strip().lower() == "wait" else 0.0
    except ValueError:
        return 0.0


def job_path(job_id: str, *rest: str) -> str:
    """/jobs/ID/...: ids may hold ':' and '@', which stay readable; anything else is quoted."""
    return "/".join(("/jobs", quote(job_id, safe=":@"), *rest))


class Client:
    """The job API of one gateway. `token` is sent as `Authorization: Bearer` when auth is on."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def begin(self, body: Any = DEFAULT_BODY, id: str | None = None) -> dict[str, Any]:
        """POST /begin: starts `foo(body)` (any JSON value, `None` too; by default the API's
        {"foo": "bar"}); `{"promise", "status", "wait"}`. Without an id one is minted here, not
        by the server, so that a resend after a 503 cannot start it twice; a `ClientError`
        carries it as `job_id`, so that a caller may resend after an answer was lost."""
        job_id = id or str(uuid.uuid4())
        sent: dict[str, Any] = {}
        if body is not DEFAULT_BODY:  # NaN or Infinity: ValueError, as JSON has no such number
            sent = {"data": json.dumps(body, allow_nan=False).encode(),
                    "headers": {"Content-Type": "application/json"}}
        try:
            return self._call("POST", "/begin", params={"id": job_id}, **sent).json()
        except ClientError as exc:
            exc.job_id = job_id
            raise

    def submit_job(self, order_id: str, items: list[str]) -> JobView:
        """POST /jobs: the order's job `order:{order_id}`; a resend reconnects to it."""
        return self._call("POST", "/jobs", json={"order_id": order_id, "items": items}).json()

    def status(self, job_id: str) -> JobView:
        """GET /jobs/ID: the job now, never waiting."""
        return self._call("GET", job_path(job_id)).json()

    def cancel(self, job_id: str) -> JobView:
        """POST /jobs/ID/cancel: Conflict (`already_settled`) once the job has finished."""
        return self._call("POST", job_path(job_id, "cancel")).json()

    def retry(self, job_id: str) -> JobView:
        """POST /jobs/ID/retry: the view of the job's next attempt, `ID:attempt-N` (the same
        one if it was retried before, so a resend starts nothing more)."""
        return self._call("POST", job_path(job_id, "retry")).json()

    def steps(self, job_id: str) -> dict[str, Any]:
        """GET /jobs/ID/steps: `{"job_id", "steps": [{"id", "kind", "function", "status",
        "created_at", "completed_at"}]}`."""
        return self._call("GET", job_path(job_id, "steps")).json()

    def jobs(self, status: str | list[str] | None = None, function: str | None = None,
             limit: int | None = None, page_size: int = PAGE_SIZE) -> Iterator[JobView]:
        """Jobs newest first, following next_cursor page after page: every job that matches,
        or the first `limit` of them. `status` is one job state or several (any of them), or
        waiting_for_approval."""
        params: dict[str, Any] = {"state": [status] if isinstance(status, str) else status,
                                  "function": function,
                                  "limit": min(limit or page_size, page_size)}
        left = limit
        while left is None or left > 0:
            page = self._call("GET", "/jobs", params=params).json()
            shown = page["jobs"][:left]
            yield from shown
            if left is not None:
                left -= len(shown)
            if not page["next_cursor"]:
                return
            params["cursor"] = page["next_cursor"]

    def wait(self, job_id: str, timeout: float = 60.0,
             on_pending: Callable[[JobView], None] | None = None,
             pending_interval: float = 1.0) -> JobView:
        """The job's view once it has settled, in any final state (see its `status`); raises
        WaitTimeout if it is still pending after `timeout` seconds.

        Long-polls the status monitor (`Prefer: wait=S`), so the answer comes as soon as the job
        settles. An answer the server did not hold (no long-poll there, or a gateway shutting
        down) is followed by a pause: at least its Retry-After, growing to MAX_BACKOFF_SECONDS;
        so is a 503 or no answer at all (an engine restarting), until `timeout`.
        With `on_pending`, holds last at most `pending_interval` and the job's view (with its
        `progress`, when the job reports one) is passed to it after each of them.
        """
        deadline = time.monotonic() + timeout
        max_hold = pending_interval if on_pending else MAX_HOLD_SECONDS
        backoff = FIRST_BACKOFF_SECONDS
        last_seen: JobView | None = None
        while True:
            hold = max(min(deadline - time.monotonic(), max_hold), 0.0)
            sent = time.monotonic()
            try:
                monitor = self._call("GET", job_path(job_id, "operation"),
                                     headers={"Prefer": f"wait={hold:.3f}"}, hold=hold)
            except (Overloaded, Unreachable):
                # The job runs on while the engine or the gateway restarts: asked again until
                # `timeout`, not given up after _call's few resends (tests/test_client.py).
                if time.monotonic() + backoff >= deadline:
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            if monitor.json()["status"] not in RUNNING_STATUSES:
                return self.status(job_id)
            granted = granted_hold(monitor)
            answered_early = not granted or time.monotonic() - sent < granted
            if on_pending:
                last_seen = self.status(job_id)
                if last_seen["status"] not in PENDING_STATUSES:
                    return last_seen  # it settled in between
                on_pending(last_seen)
            pause = 0.0
            if answered_early:  # not held (no long-poll there, or it is shutting down)
                pause = max(retry_after_seconds(monitor, 0.0), backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            if time.monotonic() + pause >= deadline:
                raise WaitTimeout(job_id, timeout, last_seen or self.status(job_id))
            time.sleep(pause)

    def _call(self, method: str, path: str, hold: float = 0.0,
              **kwargs: Any) -> requests.Response:
        """One API call, sent again after a 503 that says when (Retry-After), at most
        UNAVAILABLE_RETRIES times: every call here is safe to resend (ids make starts
        idempotent). Error answers raise their ApiError."""
        for attempt in range(UNAVAILABLE_RETRIES + 1):
            response = self._send(method, path, hold, kwargs, resent=attempt > 0)
            if response.ok:
                content_type = response.headers.get("Content-Type", "")
                if not content_type.startswith("application/json"):
                    raise NotTheApi(f"{self.base_url} answered {response.status_code} "
                                    f"{content_type or 'without a content type'}, not the API's "
                                    "JSON: is it an async-api gateway?")
                return response
            error = api_error(response)
            resend = isinstance(error, Overloaded) and "Retry-After" in response.headers
            if not resend or attempt == UNAVAILABLE_RETRIES:
                raise error
            time.sleep(retry_after_seconds(response, 1.0))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _send(self, method: str, path: str, hold: float, kwargs: dict[str, Any],
              resent: bool) -> requests.Response:
        """One request. A resend comes after a Retry-After sleep, by which the server may have
        closed the kept-alive connection as idle (gunicorn's keepalive: 2 s): a resend that
        finds its connection gone is sent once more, on a new one (tests/test_client.py)."""
        for last_try in ((False, True) if resent else (True,)):
            try:
                return self.session.request(method, f"{self.base_url}{path}",
                                            timeout=REQUEST_TIMEOUT_SECONDS + hold, **kwargs)
            except requests.RequestException as exc:
                if last_try or not isinstance(exc, requests.ConnectionError):
                    raise Unreachable(
                        f"cannot reach {self.base_url} ({type(exc).__name__})") from exc
        raise AssertionError("unreachable")  # the last try returns or raises
