"""JOB_TIMEOUT_SECONDS: a job not done by then ends `timedout`, an order whose approval never
came fails, and the worker that was running them lives on."""

from __future__ import annotations

from tests.support.processes import wait_until


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
    order = stack.job_settled(f"order:{order_id}")
    # The job's own deadline, or its approval's (the same length, started a moment earlier):
    # whichever the server times out first ends the job.
    assert order["status"] in ("timedout", "rejected"), order
    if order["status"] == "rejected":
        assert order["reason"]["message"] == (f"approval:{order_id} was timedout before it "
                                              "finished"), order
    # The worker was mid-job (asleep) when the job timed out; it wakes into a settled job.
    wait_until(lambda: stack.promise_state(f"{job_id}.1") not in (None, "PENDING"), 20,
               "the sleep to end")
    fresh = f"after-{nonce}"
    assert stack.begin(fresh, {"nonce": nonce}).status_code == 202
    assert stack.wait_settled(fresh)["status"] == "resolved"
    assert worker.alive()
