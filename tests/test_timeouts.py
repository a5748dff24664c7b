"""JOB_TIMEOUT_SECONDS: a job not done by then ends `timedout`, an order whose approval never
came fails, and the worker that was running them lives on."""

from __future__ import annotations

import time

import requests

from tests.conftest import GATEWAY_ENV
from tests.support.http import approval_path, approval_webhook, assert_error
from tests.support.processes import wait_until
from workers import ledger

SECRET = GATEWAY_ENV["WEBHOOK_SECRET"]


def test_a_job_past_its_timeout_ends_timedout_and_the_worker_lives(make_stack, store, nonce):
    stack = make_stack(store=store)
    worker = stack.start(["worker"], gateway_env={"JOB_TIMEOUT_SECONDS": "2"})["worker"]
    job_id, order_id = f"late-{nonce}", f"late-{nonce}"

    assert stack.begin(job_id, {"sleep": 6, "nonce": nonce}).status_code == 202
    assert stack.post(f"/orders/{order_id}/approve-and-ship").status_code == 202

    deadline = {"type": "TimedOut", "message": "The job did not finish before its deadline."}
    assert stack.wait_settled(job_id, timeout=30) == {
        "status": "timedout", "promise_id": job_id, "error": deadline}
    assert stack.get(f"/jobs/{job_id}").json()["reason"] == deadline
    # listed as timed out, by today's word and the old one, and as nothing else
    assert stack.listed("timedout")[job_id] == "timedout"
    assert stack.listed("timed_out")[job_id] == "timedout"
    for other in ("rejected", "canceled", "resolved", "pending"):
        assert job_id not in stack.listed(other), other
    # The job's own deadline ends it, not its approval's: that one, started a moment earlier
    # with the same length, once timed out first and the order ended rejected.
    order = stack.job_settled(f"order:{order_id}")
    assert (order["status"], order["reason"]["type"]) == ("timedout", "TimedOut"), order
    # Its approval times out too: nothing awaits a decision. The server answers a promise that
    # timed out as it is, with a 200, to a settle that is not strict: once taken as a decision.
    wait_until(lambda: stack.promise_state(f"approval:{order_id}") == "REJECTED_TIMEDOUT", 15,
               "the approval to time out")
    for decision in (True, False):
        late = requests.post(f"{stack.gateway_url}{approval_path(order_id)}", timeout=10,
                             **approval_webhook(order_id, {"approved": decision}, SECRET))
        assert_error(late, 404, "not_found")
    # The worker was mid-job (asleep) when the job timed out; it wakes into a settled job.
    wait_until(lambda: stack.promise_state(f"{job_id}.1") not in (None, "PENDING"), 20,
               "the sleep to end")
    fresh = f"after-{nonce}"
    assert stack.begin(fresh, {"nonce": nonce}).status_code == 202
    assert stack.wait_settled(fresh)["status"] == "resolved"
    assert worker.alive()


def test_an_order_timed_out_mid_step_does_no_further_effect(make_stack, nonce):
    """Its worker learns of the timeout only when it next renews its claim: the next step
    checks its job first, so the order that timed out during "charge" never ships (and a
    retry of it would not ship twice)."""
    stack = make_stack()
    stack.start(["worker"], {"STEP_PAUSE_SECONDS": "1.5"},
                gateway_env={"JOB_TIMEOUT_SECONDS": "2"})
    order_id = f"T-{nonce}"
    assert stack.post("/jobs", {"order_id": order_id, "items": ["x"]}).status_code == 202

    assert stack.job_settled(f"order:{order_id}", timeout=15)["status"] == "timedout"
    wait_until(lambda: ledger.count("charge", order_id, stack.ledger_path) == 1, 10,
               "the step under way at the timeout to end")
    time.sleep(2)  # when "ship" would have run
    assert ledger.count("ship:started", order_id, stack.ledger_path) == 0
    assert ledger.count("ship", order_id, stack.ledger_path) == 0
