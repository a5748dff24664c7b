"""The job API's history, progress and retry (README "Job history, progress and retry"):
what a job view says about a job, GET /jobs/{id}/steps, progress that survives a worker
crash, POST /jobs/{id}/retry."""

import sys
from datetime import datetime

import requests
from prometheus_client.parser import text_string_to_metric_families
from resonate.encoders import JsonEncoder

from async_api.engine.client import MAX_STEP_PAGES, STEP_PAGE_SIZE, STEP_TAG
from async_api.engine.sdk_fixes import FencedStore
from tests.conftest import SHARED_STACK_ON_SQLITE
from tests.support.http import assert_error
from tests.support.processes import wait_until
from workers import ledger
from workers.functions import canonical as canonical_body


def moment(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def test_a_finished_order_job_shows_its_metadata_progress_and_steps(stack, nonce):
    order_id = f"M-{nonce}"
    job_id = f"order:{order_id}"
    started = stack.post("/jobs", {"order_id": order_id, "items": ["x", "y"]}).json()
    assert (started["function"], started["group"], started["attempt"]) == \
        ("process_order", "worker", 1)
    assert started["completed_at"] is None
    stack.job_settled(job_id)

    job = stack.get(f"/jobs/{job_id}").json()
    assert job["status"] == "resolved"
    assert job["args"] == [order_id, ["x", "y"]]
    assert moment(job["created_at"]) <= moment(job["completed_at"]) == moment(job["updated_at"])
    assert job["progress"]["fraction"] == 1.0
    assert job["progress"]["message"] == "ship done"
    assert "retry_of" not in job and "retried_by" not in job  # only failed jobs are retried

    steps = stack.get(f"/jobs/{job_id}/steps").json()
    assert steps["job_id"] == job_id
    assert [(s["kind"], s["function"]) for s in steps["steps"]] == [
        ("step", "order_step"), ("progress", None)] * 3
    assert [s["progress"]["message"] for s in steps["steps"] if s["kind"] == "progress"] == \
        ["validate done", "charge done", "ship done"]
    assert {s["status"] for s in steps["steps"]} == {"resolved"}
    for step in steps["steps"]:
        assert moment(job["created_at"]) <= moment(step["created_at"]) \
            <= moment(step["completed_at"]) <= moment(job["completed_at"])

    # the same progress in both long-running-operation conventions
    monitor = stack.get(f"/jobs/{job_id}/operation").json()
    assert monitor["percentComplete"] == 100
    assert monitor["lastUpdatedDateTime"] == job["updated_at"]
    metadata = stack.get(f"/v1/operations/{job_id}").json()["metadata"]["value"]
    assert (metadata["progressPercent"], metadata["progressMessage"]) == (100, "ship done")
    assert metadata["function"] == "process_order"


def test_a_first_run_checkpoints_each_step_in_one_write(stack, nonce):
    """In a workflow's first run, a step's promise is written once, already settled, when the
    step ends (sdk_fixes._WorkflowPromiseStore, server patch 0007): created and completed at
    the same instant, although the step took 100 ms. A replay reads it as any checkpoint."""
    job_id = f"one-write-{nonce}"
    body = {"work": 0.1, "nonce": nonce}
    assert stack.begin(job_id, body).status_code == 202
    assert stack.wait_settled(job_id)["status"] == "resolved"

    step = requests.get(f"{stack.engine.url}/promises/{job_id}.1", timeout=5).json()
    assert (step["state"], step["tags"]) == ("RESOLVED", {STEP_TAG: "foo_effect"})
    assert step["createdOn"] == step["completedOn"]
    assert step["idempotencyKeyForCreate"] == step["idempotencyKeyForComplete"]
    assert ledger.count("foo", canonical_body(body), stack.ledger_path) == 1
    steps = stack.get(f"/jobs/{job_id}/steps").json()["steps"]
    assert [(s["kind"], s["function"], s["status"]) for s in steps] == \
        [("step", "foo_effect", "resolved")]


def test_a_workflow_returning_after_its_step_writes_both_at_once(stack, nonce):
    """`foo` returns right after its step: the step's promise is created in the write that
    settles the job (sdk_fixes._WorkflowPromiseStore, server patch 0008), so the job costs the
    server one create (the gateway's) instead of two, and both carry the same instant."""
    job_id = f"both-at-once-{nonce}"
    creates, completes = (stack.engine.requests_answered("CreatePromise"),
                          stack.engine.requests_answered("CompletePromise"))
    assert stack.begin(job_id, {"work": 0.05, "nonce": nonce}).status_code == 202
    assert stack.wait_settled(job_id)["status"] == "resolved"
    assert (stack.engine.requests_answered("CreatePromise") - creates,
            stack.engine.requests_answered("CompletePromise") - completes) == (1, 1)

    job = requests.get(f"{stack.engine.url}/promises/{job_id}", timeout=5).json()
    step = requests.get(f"{stack.engine.url}/promises/{job_id}.1", timeout=5).json()
    assert (step["state"], step["tags"]) == ("RESOLVED", {STEP_TAG: "foo_effect"})
    assert step["createdOn"] == step["completedOn"] == job["completedOn"]
    assert [(s["function"], s["status"]) for s in
            stack.get(f"/jobs/{job_id}/steps").json()["steps"]] == [("foo_effect", "resolved")]


def first_run_step(promises, step_id: str, outcome: str, value: object):
    """A step of a workflow's first run, as the worker's scheduler drives the store: its
    promise created, then settled with the step's outcome."""
    promises.step_name, promises.first_run = "foo_effect", True
    try:
        promises.create(id=step_id, ikey=step_id, strict=False, headers=None, data=None,
                        timeout=sys.maxsize, tags=None)
    finally:
        promises.step_name, promises.first_run = None, False
    settle = promises.resolve if outcome == "RESOLVED" else promises.reject
    return settle(id=step_id, ikey=step_id, strict=False, headers=None,
                  data=JsonEncoder().encode(value))


def test_a_first_run_step_settles_what_another_run_created_meanwhile(stack, nonce):
    """The one-write checkpoint meets a step promise already there (a stale run of the same
    workflow created it pending): it settles that one the usual way. Alone, it writes the
    promise settled, rejected as well as resolved."""
    promises = FencedStore(stack.engine.url, timeout_seconds=5).promises
    encoder = JsonEncoder()
    other_run = f"first-run-{nonce}.1"
    promises.create(id=other_run, ikey=other_run, strict=False, headers=None, data=None,
                    timeout=sys.maxsize, tags=None)  # another run's, still pending
    settled = first_run_step(promises, other_run, "RESOLVED", "ours")
    assert settled.state == "RESOLVED"
    assert encoder.decode(settled.value.data) == "ours"

    failed = first_run_step(promises, f"first-run-{nonce}-failed.1", "REJECTED", "it broke")
    assert failed.state == "REJECTED"
    assert encoder.decode(failed.value.data) == "it broke"


def test_a_held_step_is_written_before_its_workflows_next_write(stack, nonce):
    """A first run's step held for its workflow's result (sdk_fixes._WorkflowPromiseStore) is
    written before any other write of the same workflow, when the scheduler says the workflow
    waits (write_held), and never once its run is dropped (forget)."""
    promises = FencedStore(stack.engine.url, timeout_seconds=5).promises
    root = f"held-{nonce}"
    promises.current_root = lambda: root

    def stored(promise_id: str) -> str | None:
        answer = requests.get(f"{stack.engine.url}/promises/{promise_id}", timeout=5)
        return answer.json()["state"] if answer.ok else None

    assert first_run_step(promises, f"{root}.1", "RESOLVED", 1).state == "RESOLVED"
    assert stored(f"{root}.1") is None  # held
    promises.create(id=f"{root}.2", ikey=f"{root}.2", strict=False, headers=None, data=None,
                    timeout=sys.maxsize, tags=None)  # e.g. a durable sleep's promise
    assert (stored(f"{root}.1"), stored(f"{root}.2")) == ("RESOLVED", "PENDING")

    first_run_step(promises, f"{root}.3", "REJECTED", "no")
    first_run_step(promises, f"{root}.4", "RESOLVED", 4)  # the earlier one goes first
    assert (stored(f"{root}.3"), stored(f"{root}.4")) == ("REJECTED", None)
    promises.write_held(root)
    assert stored(f"{root}.4") == "RESOLVED"

    first_run_step(promises, f"{root}.5", "RESOLVED", 5)
    promises.forget(root)
    promises.write_held(root)
    assert stored(f"{root}.5") is None


def test_steps_name_sleeps_child_calls_and_the_approval_awaited(stack, nonce):
    sleeper = f"steps-sleep-{nonce}"
    assert stack.begin(sleeper, {"sleep": 1, "nonce": nonce}).status_code == 202
    stack.wait_settled(sleeper)
    kinds = [(s["kind"], s["function"]) for s in
             stack.get(f"/jobs/{sleeper}/steps").json()["steps"]]
    assert kinds == [("sleep", None), ("step", "foo_effect")]

    fan = f"steps-fan-{nonce}"
    assert stack.post(f"/fan-out-workflow?id={fan}", {"count": 3}).status_code == 202
    assert stack.job_settled(fan)["progress"] == {
        "fraction": 1.0, "message": "3 of 3 squares",
        "reported_at": stack.get(f"/jobs/{fan}").json()["progress"]["reported_at"]}
    steps = stack.get(f"/jobs/{fan}/steps").json()["steps"]
    assert [s["function"] for s in steps if s["kind"] == "call"] == ["square"] * 3
    assert [s["progress"]["fraction"] for s in steps if s["kind"] == "progress"] == \
        [1 / 3, 2 / 3, 1.0]

    order_id = f"steps-approval-{nonce}"
    stack.post(f"/orders/{order_id}/approve-and-ship")
    wait_until(lambda: stack.get(f"/jobs/order:{order_id}").json()["status"]
               == "waiting_for_approval", 15, "the job to wait for approval")
    (signal,) = stack.get(f"/jobs/order:{order_id}/steps").json()["steps"]
    assert (signal["id"], signal["kind"], signal["status"]) == \
        (f"approval:{order_id}", "signal", "pending")
    stack.post(f"/jobs/order:{order_id}/cancel")


def test_steps_of_what_is_not_a_job_are_404(stack, nonce):
    assert_error(stack.get(f"/jobs/nothing-{nonce}/steps"), 404, "not_found")
    order_id = f"S404-{nonce}"
    stack.post("/jobs", {"order_id": order_id, "items": ["x"]})
    stack.job_settled(f"order:{order_id}")
    assert_error(stack.get(f"/jobs/order:{order_id}.1/steps"), 404, "not_found")


def engine_searches(stack) -> float:
    """The gateway's searches of the server's promises so far (its /metrics)."""
    text = requests.get(f"{stack.gateway_url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "async_api_engine_call_duration_seconds_count"
               and sample.labels.get("call") == "GET /promises")


@SHARED_STACK_ON_SQLITE
def test_an_id_holding_underscores_reads_a_bounded_number_of_pages_for_its_steps(stack, nonce):
    """"_" is a wildcard in the server's id pattern: the steps of `w<tag>_____` are searched
    with a pattern every `w<tag>NNNNN.1` matches too. They are not shown, and however many
    there are, one request reads at most MAX_STEP_PAGES pages of them (it read them all)."""
    tag = nonce[:8]
    with requests.Session() as engine:
        for n in range(MAX_STEP_PAGES * STEP_PAGE_SIZE + 150):  # another page and a half
            created = engine.post(f"{stack.engine_url}/promises", timeout=10, json={
                "id": f"w{tag}{n:05d}.1", "timeout": 2**62})
            assert created.status_code == 201, created.text
    job_id = f"w{tag}_____"
    assert stack.begin(job_id).status_code == 202
    stack.wait_settled(job_id)
    before = engine_searches(stack)

    steps = stack.get(f"/jobs/{job_id}/steps")

    assert steps.status_code == 200, steps.text
    assert all(step["id"].startswith(f"{job_id}.") for step in steps.json()["steps"])
    assert engine_searches(stack) - before <= MAX_STEP_PAGES


@SHARED_STACK_ON_SQLITE
def test_an_id_holding_underscores_keeps_its_progress_among_look_alikes(stack, nonce):
    """The progress of `order:P_<tag>` is searched with a pattern the reports of
    `order:P-<tag>`, `order:PA<tag>`... match too: once more than a page of them came after
    its own, every view of the job lost its progress (its steps still listed it)."""
    tag = nonce[:8]
    job_id = f"order:P_{tag}"
    stack.post("/jobs", {"order_id": f"P_{tag}", "items": ["x"]})
    stack.job_settled(job_id)
    for look_alike in "-ABCD":  # three reports each: more than the first page holds
        stack.post("/jobs", {"order_id": f"P{look_alike}{tag}", "items": ["x"]})
        stack.job_settled(f"order:P{look_alike}{tag}")

    assert stack.get(f"/jobs/{job_id}").json()["progress"]["message"] == "ship done"
    assert stack.get(f"/jobs/{job_id}/operation").json()["percentComplete"] == 100
    metadata = stack.get(f"/v1/operations/{job_id}").json()["metadata"]["value"]
    assert (metadata["progressPercent"], metadata["progressMessage"]) == (100, "ship done")


def test_a_failed_job_is_retried_once_per_attempt_and_linked_both_ways(stack, nonce):
    job_id = f"retry-{nonce}"
    body = {"fail": "not today", "nonce": nonce}
    stack.begin(job_id, body)
    assert stack.wait_settled(job_id)["status"] == "rejected"

    retried = stack.post(f"/jobs/{job_id}/retry")
    assert retried.status_code == 202
    second = retried.json()
    assert second["job_id"] == f"{job_id}:attempt-2"
    assert (second["attempt"], second["retry_of"], second["first_attempt"]) == (2, job_id, job_id)
    assert second["function"] == "foo"
    assert retried.headers["Operation-Location"].endswith(f"/jobs/{job_id}:attempt-2/operation")
    again = stack.post(f"/jobs/{job_id}/retry")  # the same attempt, not a third run
    assert (again.status_code, again.json()["job_id"]) == (202, second["job_id"])

    assert stack.job_settled(second["job_id"])["status"] == "rejected"  # same body: fails again
    assert stack.ran([body])[canonical_body(body)] == 2  # once per attempt
    assert stack.get(f"/jobs/{job_id}").json()["retried_by"] == second["job_id"]

    third = stack.post(f"/jobs/{second['job_id']}/retry").json()
    assert (third["job_id"], third["attempt"], third["retry_of"], third["first_attempt"]) == \
        (f"{job_id}:attempt-3", 3, second["job_id"], job_id)


def test_only_failed_canceled_or_timed_out_jobs_can_be_retried(stack, nonce):
    assert_error(stack.post(f"/jobs/nothing-{nonce}/retry"), 404, "not_found")
    done = f"retry-done-{nonce}"
    stack.begin(done, {"nonce": nonce})
    stack.wait_settled(done)
    assert_error(stack.post(f"/jobs/{done}/retry"), 409, "not_retryable")

    held = f"retry-held-{nonce}"
    stack.begin(held, {"sleep": 60, "nonce": nonce})
    assert_error(stack.post(f"/jobs/{held}/retry"), 409, "not_retryable")
    assert stack.post(f"/jobs/{held}/cancel").json()["status"] == "canceled"
    retry = stack.post(f"/jobs/{held}/retry").json()
    assert (retry["status"], retry["retry_of"]) == ("pending", held)
    assert stack.post(f"/jobs/{retry['job_id']}/cancel").status_code == 200


def test_progress_survives_a_worker_killed_mid_job(make_stack, nonce):
    stack = make_stack()
    doomed = stack.start(["worker"], {"STEP_PAUSE_SECONDS": "1"})["worker"]
    order_id = f"P-{nonce}"
    job_id = f"order:{order_id}"
    stack.post("/jobs", {"order_id": order_id, "items": ["x"]})

    def reported() -> dict | None:
        job = stack.get(f"/jobs/{job_id}").json()
        return job if job.get("progress") and job["status"] == "pending" else None
    running = wait_until(reported, 20, "the first progress report")
    assert running["progress"]["message"] == "validate done"
    monitor = stack.get(f"/jobs/{job_id}/operation").json()
    assert (monitor["status"], monitor["percentComplete"]) == ("Running", 33)

    doomed.kill()  # mid-"charge": nothing runs the job now
    assert not doomed.alive()
    assert stack.get(f"/jobs/{job_id}").json()["progress"]["fraction"] >= 1 / 3  # stored
    stack.start_worker("worker")

    done = stack.job_settled(job_id, timeout=60)
    assert (done["status"], done["progress"]["fraction"]) == ("resolved", 1.0)
    reports = [s for s in stack.get(f"/jobs/{job_id}/steps").json()["steps"]
               if s["kind"] == "progress"]
    assert [r["progress"]["message"] for r in reports] == \
        ["validate done", "charge done", "ship done"]  # the replay reported none twice
    assert ledger.count("validate", order_id, stack.ledger_path) == 1
