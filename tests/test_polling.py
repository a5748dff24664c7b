"""End to end: /begin and /wait through gunicorn, a real worker and a real Resonate server."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.conftest import GATEWAY_ENV
from tests.support.http import approval_path, approval_webhook, assert_error
from tests.support.processes import wait_until
from tests.support.servers import TASK_ENQUEUE_DELAY_SECONDS
from workers import ledger


def test_begin_then_wait_returns_the_processed_result(stack, nonce):
    job_id = f"job-{nonce}"
    response = stack.begin(job_id, {"foo": "hello"})

    assert response.status_code == 202
    assert response.json() == {"promise": job_id, "status": "pending",
                               "wait": f"/wait?id={job_id}"}
    assert response.headers["Location"] == f"{stack.gateway_url}/wait?id={job_id}"


    settled = stack.wait_settled(job_id)
    assert settled["status"] == "resolved"
    assert settled["promise_id"] == job_id
    assert settled["result"]["result"] == 'Processed: {"foo": "hello"}'
    assert abs(settled["result"]["timestamp"] - time.time()) < 60


def test_wait_answers_pending_with_retry_after_while_a_job_cannot_finish(stack, nonce):
    """An order awaiting its approval stays pending until its webhook comes, so the pending
    answer is checked every time, not only when a poll happens to beat the worker."""
    order_id = f"pending-{nonce}"
    job_id = f"order:{order_id}"
    assert stack.post(f"/orders/{order_id}/approve-and-ship").status_code == 202
    wait_until(lambda: stack.get(f"/jobs/{job_id}").json()["status"] == "waiting_for_approval",
               15, "the job to wait for its approval")

    pending = stack.poll(job_id)

    assert pending.status_code == 200
    assert pending.json() == {"status": "pending", "promise_id": job_id,
                              "message": "Processing in progress"}
    assert pending.headers["Retry-After"] == "1"
    approved = requests.post(f"{stack.gateway_url}{approval_path(order_id)}", timeout=10,
                             **approval_webhook(order_id, {"approved": True},
                                                GATEWAY_ENV["WEBHOOK_SECRET"]))
    assert approved.status_code == 200
    assert stack.wait_settled(job_id)["status"] == "resolved"


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
    # a second execution, if any, would come from a task offered again: wait that out twice
    time.sleep(2 * TASK_ENQUEUE_DELAY_SECONDS)
    assert ledger.count("foo", f'{{"nonce": "{nonce}"}}', stack.ledger_path) == 1


def test_same_id_with_another_body_is_a_conflict(stack, nonce):
    job_id = f"conflict-{nonce}"
    assert stack.begin(job_id, {"foo": "one"}).status_code == 202

    assert_error(stack.begin(job_id, {"foo": "two"}), 409, "conflict")


def test_a_function_that_raises_answers_rejected_with_its_reason(stack, nonce):
    job_id = f"fail-{nonce}"
    stack.begin(job_id, {"fail": "out of stock"})

    settled = stack.wait_settled(job_id)

    assert settled == {"status": "rejected", "promise_id": job_id,
                       "error": {"type": "JobFailed", "message": "out of stock"}}


def test_waiting_for_an_unknown_job_is_404(stack):
    assert_error(stack.poll("never-begun"), 404, "not_found")


def test_wait_needs_a_well_formed_id(offline):
    missing = assert_error(offline.get("/wait"), 400, "bad_request")
    assert "id" in missing["details"]["query"]

    assert_error(offline.get("/wait", query_string={"id": "../etc/passwd"}), 400, "invalid_id")


def test_probes(stack):
    assert requests.get(f"{stack.gateway_url}/healthz", timeout=5).json() == {"status": "ok"}
    assert requests.get(f"{stack.gateway_url}/readyz", timeout=5).status_code == 200


def test_wait_shows_jobs_only_not_their_steps(stack, nonce):
    job_id = f"steps-{nonce}"
    stack.begin(job_id, {"nonce": nonce})
    stack.wait_settled(job_id)

    assert stack.promise_exists(f"{job_id}.1")  # foo's checkpointed step
    assert_error(stack.poll(f"{job_id}.1"), 404, "not_found")


def test_an_absurd_sleep_is_capped_and_the_worker_lives(stack, nonce):
    job_id = f"sleepy-{nonce}"
    assert stack.begin(job_id, {"sleep": 1e16, "nonce": nonce}).status_code == 202

    wait_until(lambda: stack.promise_exists(f"{job_id}.1"), 15, "the durable sleep to start")
    assert stack.poll(job_id).json()["status"] == "pending"
    assert all(worker.alive() for worker in stack.workers)
