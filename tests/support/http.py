"""What a test asks a stack over HTTP: its gateway as a client would, its Resonate server
directly. `GatewayRequests` is part of Stack; `Client` is a client that retries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests

from async_api.resources.webhooks import SIGNATURE_HEADER, sign
from tests.support.processes import wait_until

REQUEST_TIMEOUT_SECONDS = 10


def assert_error(response: Any, status: int, code: str) -> dict:
    """The product's error answer: this status, JSON, this machine-readable code and a message.
    Takes a `requests` response or one of Flask's test client; returns the error."""
    body = response.get_json() if hasattr(response, "get_json") else response.json()
    assert (response.status_code, response.headers["Content-Type"]) == \
        (status, "application/json"), body
    error = body["error"]
    if isinstance(error["code"], int):  # a google.rpc.Status, under /v1/ (AIP-193)
        assert error["code"] == status and error["status"], body
        reasons = [d["reason"] for d in error["details"] if d["@type"].endswith(".ErrorInfo")]
        assert reasons == [code.upper()], body
    else:
        assert error["code"] == code, body
    assert error["message"]
    return error


def approval_path(order_id: str) -> str:
    return f"/webhooks/approval/{order_id}"


def approval_webhook(order_id: str, payload: dict, secret: str | None) -> dict[str, Any]:
    """The body and headers of the approval webhook of `order_id` as its sender makes them,
    signed with `secret` (None: unsigned); pass them as keyword arguments to a post to
    `approval_path(order_id)`."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(secret, approval_path(order_id), body)
    return {"data": body, "headers": headers}


class GatewayRequests:
    """Stack's requests; `gateway_url` and `engine_url` are the stack's."""

    gateway_url: str
    engine_url: str

    def begin(self, job_id: str | None = None, body: Any = None) -> requests.Response:
        params = {"id": job_id} if job_id else {}
        return self.post("/begin", body, params=params)

    def poll(self, job_id: str) -> requests.Response:
        return self.get("/wait", params={"id": job_id})

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return requests.post(f"{self.gateway_url}{path}", json=body,
                             timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.gateway_url}{path}", timeout=REQUEST_TIMEOUT_SECONDS,
                            **kwargs)

    def wait_settled(self, job_id: str, timeout: float = 30) -> dict:
        """Polls /wait like a client would until the job is no longer pending."""
        def settled() -> dict | None:
            response = self.poll(job_id)
            if response.status_code == 200 and response.json()["status"] != "pending":
                return response.json()
            return None
        return wait_until(settled, timeout, f"job {job_id} to settle", interval=0.1)

    def job_settled(self, job_id: str, timeout: float = 30) -> dict:
        """Polls GET /jobs/<id> until the job is neither pending nor waiting."""
        def settled() -> dict | None:
            job = self.get(f"/jobs/{job_id}").json()
            return job if job["status"] not in ("pending", "waiting_for_approval") else None
        return wait_until(settled, timeout, f"job {job_id} to settle", interval=0.1)

    def listed(self, state: str) -> dict[str, str]:
        """Every job GET /jobs?state= lists, following next_cursor to the last page:
        {job_id: status}."""
        jobs: dict[str, str] = {}
        params: dict[str, Any] = {"state": state, "limit": 100}
        while True:
            page = self.get("/jobs", params=params)
            assert page.status_code == 200, page.text
            jobs.update((job["job_id"], job["status"]) for job in page.json()["jobs"])
            if not page.json()["next_cursor"]:
                return jobs
            params["cursor"] = page.json()["next_cursor"]

    def promise_state(self, promise_id: str) -> str | None:
        """Asks the engine directly, e.g. whether a workflow step is durably done."""
        response = requests.get(f"{self.engine_url}/promises/{promise_id}", timeout=2)
        return response.json()["state"] if response.ok else None

    def completed_on(self, promise_id: str) -> int:
        """When the engine settled a promise (ms since the epoch), by the engine's own clock."""
        response = requests.get(f"{self.engine_url}/promises/{promise_id}", timeout=2)
        return response.json()["completedOn"]

    def promise_exists(self, promise_id: str) -> bool:
        return self.promise_state(promise_id) is not None


class Client:
    """A well-behaved polling client: it retries a begin with the same id and body after a
    dropped connection or a 503, and keeps every answer it got for the test to inspect."""

    def __init__(self, url: Callable[[], str]) -> None:
        self.url = url  # read on every attempt: a test may move clients to a new gateway
        self.answers: list[requests.Response] = []

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        try:
            answer = requests.request(method, f"{self.url()}{path}",
                                      timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)
        except requests.RequestException:  # e.g. its gateway was killed mid-request
            time.sleep(0.05)
            return None
        self.answers.append(answer)
        if answer.status_code == 503:
            time.sleep(0.2)  # Retry-After says 1 s; shorter keeps the test quick
        return answer

    def begin(self, job_id: str, body: Any, timeout: float = 60) -> requests.Response:
        """Retries until the gateway accepts (or refuses for good, 4xx)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self._send("POST", "/begin", params={"id": job_id}, json=body)
            if answer is not None and answer.status_code != 503:
                return answer
        raise AssertionError(f"begin {job_id} was never answered in {timeout}s")

    def poll(self, job_id: str) -> requests.Response | None:
        return self._send("GET", "/wait", params={"id": job_id})
