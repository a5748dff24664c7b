"""A burst of jobs on one worker: the server re-sends tasks the busy worker has not claimed yet;
the worker must neither die on the copies nor run a job twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

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
