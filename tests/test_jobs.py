"""The job API end to end: submit, poll, list, cancel, checkpointed steps."""

from __future__ import annotations

import pytest

from tests.conftest import SHARED_STACK_ON_SQLITE
from tests.support.http import assert_error
from tests.support.processes import wait_until
from workers import ledger
from workers.functions import canonical


def test_an_order_job_runs_its_steps_once_and_a_retry_reconnects(stack, nonce):
    order = {"order_id": f"A-{nonce}", "items": ["x", "y"]}
    job_id = f"order:A-{nonce}"

    first = stack.post("/jobs", order)
    assert first.status_code == 202
    assert first.json()["job_id"] == job_id
    assert first.json()["status"] == "pending"
    assert first.json()["links"] == {
        "self": f"/jobs/{job_id}", "cancel": f"/jobs/{job_id}/cancel",
        "retry": f"/jobs/{job_id}/retry", "steps": f"/jobs/{job_id}/steps",
        "status_monitor": f"/jobs/{job_id}/operation"}
    assert first.headers["Location"] == f"{stack.gateway_url}/jobs/{job_id}"

    done = stack.job_settled(job_id)
    assert done["status"] == "resolved"
    assert done["result"] == {"order_id": f"A-{nonce}", "items": ["x", "y"], "status": "shipped",
                              "steps": ["validate", "charge", "ship"]}

    retry = stack.post("/jobs", order)
    assert retry.status_code == 202
    assert retry.json()["status"] == "resolved"
    for step in ("validate", "charge", "ship"):
        assert ledger.count(step, f"A-{nonce}", stack.ledger_path) == 1


def test_a_failed_validation_fails_the_job_with_a_reason(stack, nonce):
    stack.post("/jobs", {"order_id": f"F-{nonce}", "items": ["unavailable"]})

    job = stack.job_settled(f"order:F-{nonce}")

    assert job["status"] == "rejected"
    assert job["reason"]["type"] == "JobFailed"
    assert "validate failed" in job["reason"]["message"]
    assert ledger.count("charge", f"F-{nonce}", stack.ledger_path) == 0


def test_the_same_order_id_with_other_items_is_a_conflict(stack, nonce):
    stack.post("/jobs", {"order_id": f"C-{nonce}", "items": ["x"]})

    response = stack.post("/jobs", {"order_id": f"C-{nonce}", "items": ["z"]})

    assert_error(response, 409, "conflict")


@pytest.mark.parametrize(("body", "field"), [
    ({"order_id": "A1", "items": []}, "items"),
    ({"order_id": "A1", "items": "x"}, "items"),
    ({"order_id": 7, "items": ["x"]}, "order_id"),
    ({"order_id": "A1", "items": ["x"], "colour": "red"}, "colour"),
    ({"items": ["x"]}, "order_id"),
    ({"order_id": "has space", "items": ["x"]}, "order_id"),
])
def test_invalid_orders_get_422_with_messages_per_field(offline, body, field):
    response = offline.post("/jobs", json=body)

    assert_error(response, 422, "unprocessable_entity")
    assert field in response.get_json()["error"]["details"]["json"]


def test_listing_takes_the_state_words_of_wait_and_reads_the_old_ones(offline):
    assert_error(offline.get("/jobs", query_string={"state": "sleeping"}), 422,
                 "unprocessable_entity")
    # a state it takes gets as far as the (absent) engine
    for state in ("pending", "resolved", "rejected", "canceled", "timedout",
                  "waiting_for_approval", "running", "done", "failed", "cancelled", "timed_out"):
        assert_error(offline.get("/jobs", query_string={"state": state}), 503,
                     "engine_unavailable")


def test_unknown_jobs_are_404_and_ids_may_hold_colons(stack):
    assert_error(stack.get("/jobs/order:does-not-exist"), 404, "not_found")
    assert_error(stack.post("/jobs/order:does-not-exist/cancel"), 404, "not_found")


def test_listing_filters_by_state_and_pages_with_a_cursor(stack, nonce):
    for n in range(3):
        stack.post("/jobs", {"order_id": f"L{n}-{nonce}", "items": ["x"]})
    for n in range(3):
        stack.job_settled(f"order:L{n}-{nonce}")

    first = stack.get("/jobs", params={"state": "resolved", "limit": 2}).json()
    assert len(first["jobs"]) == 2
    assert {job["status"] for job in first["jobs"]} == {"resolved"}
    assert first["next_cursor"]
    second = stack.get("/jobs", params={"state": "resolved", "limit": 2,
                                        "cursor": first["next_cursor"]}).json()
    seen = [job["job_id"] for job in first["jobs"] + second["jobs"]]
    assert len(seen) == len(set(seen)), "pages must not overlap"
    # newest first: the last order submitted leads the first page
    assert first["jobs"][0]["job_id"] == f"order:L2-{nonce}"
    # an older word for the same state lists the same jobs
    assert stack.get("/jobs", params={"state": "done", "limit": 2}).json() == first


def test_each_finished_state_lists_exactly_its_jobs_by_new_and_old_words(stack, nonce):
    """The engine pages canceled and timed-out jobs together with failed ones: the gateway must
    split them. (`timedout` is listed in test_timeouts.py, which makes a job time out.)"""
    ours = {"resolved": f"ok-{nonce}", "rejected": f"failed-{nonce}",
            "canceled": f"canceled-{nonce}"}
    stack.begin(ours["resolved"], {"nonce": nonce})
    stack.begin(ours["rejected"], {"fail": "no", "nonce": nonce})
    stack.begin(ours["canceled"], {"sleep": 5, "nonce": nonce})
    assert stack.post(f"/jobs/{ours['canceled']}/cancel").json()["status"] == "canceled"
    for job_id in ours.values():
        stack.wait_settled(job_id)

    for state, old_word in (("resolved", "done"), ("rejected", "failed"),
                            ("canceled", "cancelled")):
        for word in (state, old_word):
            listed = stack.listed(word)
            assert set(listed.values()) == {state}, (word, listed)
            assert set(listed) & set(ours.values()) == {ours[state]}, word


def test_a_cursor_the_server_did_not_issue_is_invalid_cursor(stack):
    issued = stack.get("/jobs", params={"limit": 1}).json()["next_cursor"]
    assert issued  # the shared stack has run jobs by now
    assert stack.get("/jobs", params={"limit": 1, "cursor": issued}).status_code == 200
    for forged in ("not-a-cursor", issued[:-4], "eyJ9"):
        response = stack.get("/jobs", params={"cursor": forged})
        assert_error(response, 400, "invalid_cursor")


def test_cancel_wins_over_a_running_job_and_a_retry_runs_it(make_stack, nonce):
    """The canceled order stops before its next step; its worker lives on; its retry, a job of
    its own, runs every step (each once checked against its own job, not the canceled one)."""
    stack = make_stack()
    slow_worker = stack.start(["worker"], {"STEP_PAUSE_SECONDS": "1"})["worker"]
    job_id = f"order:X-{nonce}"
    stack.post("/jobs", {"order_id": f"X-{nonce}", "items": ["x"]})
    wait_until(lambda: ledger.count("charge:started", f"X-{nonce}", stack.ledger_path), 15,
               "the second step to be under way")

    canceled = stack.post(f"/jobs/{job_id}/cancel")

    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    why = {"type": "Canceled", "message": "canceled by request"}  # as a worker's error reads
    assert canceled.json()["reason"] == why
    assert stack.poll(job_id).json() == {"status": "canceled", "promise_id": job_id, "error": why}
    # the worker finishes the step it is in ("charge"), then stops before "ship"
    wait_until(lambda: ledger.count("charge", f"X-{nonce}", stack.ledger_path), 15,
               "the running step to finish")
    again = stack.post(f"/jobs/{job_id}/cancel")  # sent again, its answer lost: the same answer
    assert (again.status_code, again.json()["status"]) == (200, "canceled")
    assert stack.get(f"/jobs/{job_id}").json()["status"] == "canceled"
    assert slow_worker.alive(), slow_worker.log()
    # and the same worker still takes new work
    stack.post("/jobs", {"order_id": f"Y-{nonce}", "items": ["y"]})
    assert stack.job_settled(f"order:Y-{nonce}")["status"] == "resolved"
    assert stack.get(f"/jobs/{job_id}").json()["status"] == "canceled"
    assert ledger.count("charge", f"X-{nonce}", stack.ledger_path) == 1
    assert ledger.count("ship", f"X-{nonce}", stack.ledger_path) == 0

    attempt = stack.post(f"/jobs/{job_id}/retry").json()["job_id"]
    assert stack.job_settled(attempt)["result"]["status"] == "shipped"
    assert [ledger.count(step, f"X-{nonce}", stack.ledger_path)
            for step in ("validate", "charge", "ship")] == [2, 2, 1]


def test_a_worker_killed_between_steps_does_not_redo_a_completed_step(make_stack, nonce):
    stack = make_stack()
    doomed = stack.start(["worker"], {"STEP_PAUSE_SECONDS": "1"})["worker"]
    order_id = f"K-{nonce}"
    stack.post("/jobs", {"order_id": order_id, "items": ["x"]})
    # "charge" durably done: its promise resolved, not just its ledger row written
    wait_until(lambda: stack.promise_state(f"order:{order_id}.3") == "RESOLVED", 15,
               "two steps to complete")

    doomed.kill()  # in the middle of "ship", or just before it
    stack.start_worker("worker")

    assert stack.job_settled(f"order:{order_id}", timeout=60)["status"] == "resolved"
    assert ledger.count("validate", order_id, stack.ledger_path) == 1
    assert ledger.count("charge", order_id, stack.ledger_path) == 1
    assert ledger.count("ship", order_id, stack.ledger_path) == 1


def test_workflow_steps_and_approval_promises_are_not_jobs(stack, nonce):
    stack.post("/jobs", {"order_id": f"N-{nonce}", "items": ["x"]})
    stack.job_settled(f"order:N-{nonce}")

    assert stack.promise_exists(f"order:N-{nonce}.1")  # the engine has the step...
    # ...the job API hides it
    assert_error(stack.get(f"/jobs/order:N-{nonce}.1"), 404, "not_found")


def test_the_services_own_ids_stay_reachable_from_the_longest_client_id(stack, nonce):
    """A client id may be MAX_ID_LENGTH (200) long; the ids the service builds from it (an
    order's job, a retry's attempt, a report job) are longer, and every route reaches them."""
    longest = f"{nonce}-".ljust(200, "z")
    order = stack.post(f"/orders/{longest}/approve-and-ship")
    assert order.status_code == 202, order.text
    order_job = f"order:{longest}"
    for url in (f"/jobs/{order_job}", order.headers["Operation-Location"],
                order.headers["Location"], f"/v1/operations/{order_job}", f"/wait?id={order_job}"):
        assert stack.get(url.removeprefix(stack.gateway_url)).status_code == 200, url
    assert stack.post(f"/jobs/{order_job}/cancel").json()["status"] == "canceled"
    retried = stack.post(f"/jobs/{order_job}/retry")
    assert retried.status_code == 202, retried.text
    attempt = retried.json()["job_id"]
    assert len(attempt) > 200
    assert stack.get(f"/jobs/{attempt}").json()["retry_of"] == order_job
    assert stack.post(f"/jobs/{attempt}/cancel").json()["status"] == "canceled"

    chain = stack.post(f"/detached-chain?id={longest}", {"report": "r"})
    assert chain.status_code == 202, chain.text
    child = chain.json()["child_job_id"]
    wait_until(lambda: stack.get(f"/jobs/{child}").status_code == 200, 15, "the report job")
    assert stack.job_settled(child)["status"] == "resolved"
    assert_error(stack.post(f"/orders/{longest}z/approve-and-ship"), 400, "invalid_id")


@SHARED_STACK_ON_SQLITE
def test_a_job_canceled_while_it_runs_ends_its_run_quietly(stack, nonce):
    """The cancel completes the job's claimed task (server patch 0006), so the worker's next
    heartbeat finds its claim gone. That is no expired claim and nothing is handed out again:
    the run ends with an INFO line, not the warnings (and the failed-task count) of a lost
    claim, which an operator's alert would count."""
    job_id = f"quiet-{nonce}"
    assert stack.begin(job_id, {"work": 4, "nonce": nonce}).status_code == 202
    wait_until(lambda: ledger.count("foo:started", canonical({"work": 4, "nonce": nonce}),
                                    stack.ledger_path), 15, "the step to be under way")
    assert stack.post(f"/jobs/{job_id}/cancel").json()["status"] == "canceled"

    def lines() -> list[str]:
        return [line for worker in stack.workers for line in worker.log().splitlines()
                if job_id in line]

    wait_until(lambda: any("stops: its job was canceled meanwhile" in line for line in lines()),
               15, "the run to end")
    assert not [line for line in lines() if '"level": "WARNING"' in line], lines()
    # the heartbeat's line that explains it follows the job, as the scheduler's lines do
    claim_ended = [line for worker in stack.workers for line in worker.json_lines()
                   if line["msg"].endswith("ended: its job was canceled")
                   and line.get("job_id") == job_id]
    assert claim_ended, lines()



def test_a_job_canceled_or_timed_out_mid_step_is_said_so_when_its_step_ends_first(make_stack,
                                                                                  nonce):
    """The step under way ends before the worker hears of the cancel or the timeout from a
    heartbeat (one comes every 2 s; here none comes at all): the settle of the job is refused,
    and that says it. The run ends as one whose heartbeat saw the settle: said and counted
    `canceled` or `timedout` (both were said `resolved`, a rejected order `rejected`), and its
    step's checkpoint goes with it (README, "Job history, progress and retry")."""
    stack = make_stack()
    worker = stack.start(["worker"], {"CLAIM_TTL_SECONDS": "600", "HEARTBEAT_SECONDS": "300"},
                         gateway_env={"JOB_TIMEOUT_SECONDS": "3"})["worker"]
    jobs = {"canceled": (f"canceled-{nonce}", {"work": 4.5, "nonce": nonce}),
            "timedout": (f"timedout-{nonce}", {"work": 4.5, "nonce": f"{nonce}-2"})}
    for job_id, body in jobs.values():
        stack.begin_held_job(job_id, body)
    assert stack.post(f"/jobs/{jobs['canceled'][0]}/cancel").json()["status"] == "canceled"

    for state, (job_id, body) in jobs.items():
        (finished,) = wait_until(lambda job_id=job_id: [
            line for line in worker.json_lines()
            if line.get("job_id") == job_id and line["msg"] == "task finished"], 15,
            "its run to end")
        assert finished["outcome"] == state, finished
        assert not [line for line in worker.json_lines() if line.get("job_id") == job_id
                    and line["level"] == "WARNING"]
        assert stack.ran([body]).total() == 1
        assert stack.get(f"/jobs/{job_id}/steps").json()["steps"] == []
        assert stack.poll(job_id).json()["status"] == state
