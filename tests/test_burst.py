"""A burst of jobs on one worker: the server re-sends tasks the busy worker has not claimed yet;
the worker must neither die on the copies nor run a job twice."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.support.processes import wait_until
from workers import ledger


def test_a_burst_on_one_worker_runs_every_job_exactly_once(make_stack, nonce):
    stack = make_stack()
    # 50 ms a job: the backlog takes seconds, so the server re-sends tasks (test delay: 1 s)
    worker = stack.start(["worker"], {"STEP_PAUSE_SECONDS": "0.05"})["worker"]
    job_ids = [f"burst-{nonce}-{n}" for n in range(120)]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda job_id: stack.begin(job_id, {"job": job_id}), job_ids))
    assert {answer.status_code for answer in answers} == {202}

    for job_id in job_ids:
        assert stack.wait_settled(job_id, timeout=120)["status"] == "resolved"
    assert worker.alive(), worker.log()[-2000:]
    for job_id in job_ids:
        assert ledger.count("foo", f'{{"job": "{job_id}"}}', stack.ledger_path) == 1


def test_offers_to_a_full_node_go_to_its_siblings(make_stack, nonce):
    """Long jobs hold 15 of a worker's 16 nodes (WORKER_SCHEDULERS=16: a task each). The server
    offers each quick job to a node of the group at random, mostly a full one; the quick jobs
    must run at once all the same, on the node with room (sdk_fixes.Offers), not wait for a
    long job to end or for the server to offer them again."""
    stack = make_stack()
    stack.start(["worker"], {"WORKER_SCHEDULERS": "16"})
    long_jobs = [{"work": 10, "nonce": nonce, "n": n} for n in range(15)]
    for n, body in enumerate(long_jobs):
        assert stack.begin(f"long-{nonce}-{n}", body).status_code == 202
    wait_until(lambda: sum(stack.ran(long_jobs, "foo:started").values()) == 15, 15,
               "the long jobs to hold 15 nodes")

    for n in range(5):
        quick = f"quick-{nonce}-{n}"
        started = time.monotonic()
        assert stack.begin(quick, {"n": n, "nonce": nonce}).status_code == 202
        assert stack.wait_settled(quick, timeout=30)["status"] == "resolved"
        assert time.monotonic() - started < 2.0, f"{quick} waited for a full node"
    assert sum(stack.ran(long_jobs).values()) == 0, "the long jobs must still be running"
