"""End to end: /begin and /wait through gunicorn, a real worker and a real Resonate server."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support.processes import wait_until
from workers import ledger


def test_begin_then_wait_returns_the_processed_result(stack, nonce):
    job_id = f"job-{nonce}"
    response = stack.begin(job_id, {"foo": "hello"})

    assert response.status_code == 202
    assert response.json() == {"promise": job_id, "status": "pending",
                               "wait": f"/wait?id={job_id}"}
    assert response.headers["Location"] == f"{stack.gateway_url}/wait?id={job_id}"

    pending = stack.poll(job_id)
    if pending.json()["status"] == "pending":
        assert pending.json() == {"status": "pending", "promise_id": job_id,
                                  "message": "Processing in progress"}
        assert pending.headers["Retry-After"] == "1"

    settled = stack.wait_settled(job_id)
    assert settled["status"] == "resolved"
    assert settled["promise_id"] == job_id
    assert settled["result"]["result"] == 'Processed: {"foo": "hello"}'
    assert abs(settled["result"]["timestamp"] - time.time()) < 60


def test_begin_without_id_mints_a_uuid_and_uses_the_default_body(stack):
    response = requests.post(f"{stack.gateway_url}/begin", timeout=10)

    assert response.status_code == 202
    job_id = response.json()["promise"]
    assert str(uuid.UUID(job_id)) == job_id
    settled = stack.wait_settled(job_id)
    assert settled["result"]["result"] == 'Processed: {"foo": "bar"}'


def test_same_id_and_body_runs_foo_once(stack, nonce):
    job_id, body = f"dedup-{nonce}", {"nonce": nonce}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: stack.begin(job_id, body), range(8)))

    assert {a.status_code for a in answers} == {202}
    assert {a.json()["promise"] for a in answers} == {job_id}
    first = stack.wait_settled(job_id)

    again = stack.begin(job_id, body)
    assert again.status_code == 202
    assert again.json()["status"] == "resolved"
    assert stack.wait_settled(job_id) == first  # the stored result, not a new run
    time.sleep(0.5)  # a second execution, if any, would have landed by now
    assert ledger.count("foo", f'{{"nonce": "{nonce}"}}', stack.ledger_path) == 1


def test_same_id_with_another_body_is_a_conflict(stack, nonce):
    job_id = f"conflict-{nonce}"
    assert stack.begin(job_id, {"foo": "one"}).status_code == 202

    response = stack.begin(job_id, {"foo": "two"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_a_function_that_raises_answers_rejected_with_its_reason(stack, nonce):
    job_id = f"fail-{nonce}"
    stack.begin(job_id, {"fail": "out of stock"})

    settled = stack.wait_settled(job_id)

    assert settled == {"status": "rejected", "promise_id": job_id,
                       "error": {"type": "JobFailed", "message": "out of stock"}}


def test_waiting_for_an_unknown_job_is_404(stack):
    unknown = stack.poll("never-begun")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


def test_wait_needs_a_well_formed_id(offline):
    missing = offline.get("/wait")
    assert missing.status_code == 400
    assert "id" in missing.get_json()["error"]["details"]["query"]

    bad = offline.get("/wait", query_string={"id": "../etc/passwd"})
    assert bad.status_code == 400
    assert bad.get_json()["error"]["code"] == "invalid_id"


def test_probes(stack):
    assert requests.get(f"{stack.gateway_url}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{stack.gateway_url}/readyz", timeout=5).status_code == 200


def test_wait_shows_jobs_only_not_their_steps(stack, nonce):
    job_id = f"steps-{nonce}"
    stack.begin(job_id, {"nonce": nonce})
    stack.wait_settled(job_id)

    assert stack.promise_exists(f"{job_id}.1")  # foo's checkpointed step
    assert stack.poll(f"{job_id}.1").status_code == 404


def test_an_absurd_sleep_is_capped_and_the_worker_lives(stack, nonce):
    job_id = f"sleepy-{nonce}"
    assert stack.begin(job_id, {"sleep": 1e16, "nonce": nonce}).status_code == 202

    wait_until(lambda: stack.promise_exists(f"{job_id}.1"), 15, "the durable sleep to start")
    assert stack.poll(job_id).json()["status"] == "pending"
    assert all(worker.alive() for worker in stack.workers)
