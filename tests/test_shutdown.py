"""Graceful shutdown: SIGTERM lets in-flight work finish or hands it back; nothing is lost."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import SHARED_STACK_ON_SQLITE
from tests.support.processes import wait_until
from tests.support.slow_engine import SlowProxy, slowly_answering


def sigterm_mid_step(make_stack, nonce: str, work: float,
                     worker_env: dict[str, str]):
    """A stack whose only worker got SIGTERM while it holds a job inside its step, and has
    begun to drain."""
    stack = make_stack()
    stack.engine.start()
    worker = stack.start_worker("worker", worker_env)
    stack.start_gateway()
    job_id, body = f"term-{nonce}", {"work": work, "nonce": nonce}
    assert stack.begin_held_job(job_id, body) == worker.pid

    worker.popen.send_signal(signal.SIGTERM)

    wait_until(lambda: "stopping: draining 1 task(s)" in worker.log(), 10, "the drain to begin")
    return stack, worker, job_id, body


def test_sigterm_lets_a_worker_finish_the_task_it_holds_and_take_no_new_one(make_stack, nonce):
    stack, worker, job_id, body = sigterm_mid_step(make_stack, nonce, 3, {})
    late_id, late = f"late-{nonce}", {"work": 0.1, "nonce": nonce}
    assert stack.begin(late_id, late).status_code == 202  # while it drains, the only worker

    assert worker.popen.wait(15) == 0
    assert "stopped (drained)" in worker.log()
    assert stack.wait_settled(job_id)["status"] == "resolved"  # no other worker exists
    assert stack.ran([body]).total() == 1
    assert stack.ran([body], "foo:started").total() == 1  # finished, not re-run
    assert stack.worker_pids() == {worker.pid}
    # the task created after the SIGTERM was never started by the draining worker...
    assert stack.ran([late], "foo:started").total() == 0
    assert stack.poll(late_id).json()["status"] == "pending"
    # ...but by the next worker of its group
    successor = stack.start_worker("worker")
    assert stack.wait_settled(late_id)["status"] == "resolved"
    assert stack.worker_pids("foo:started", [late]) == {successor.pid}


def test_sigterm_past_the_grace_period_hands_the_task_back(make_stack, nonce):
    stack, impatient, job_id, body = sigterm_mid_step(make_stack, nonce, 3,
                                                      {"WORKER_GRACE_SECONDS": "0.5"})
    assert impatient.popen.wait(15) == 0
    assert "stopped (tasks handed back)" in impatient.log()
    ended = [(line.get("job_id"), line.get("outcome")) for line in impatient.json_lines()
             if line["msg"] == "task finished"]
    assert ended == [(job_id, "dropped")]  # the job's trail says where its task went
    survivor = stack.start_worker("worker")

    assert stack.wait_settled(job_id, timeout=60)["status"] == "resolved"
    assert stack.ran([body]).total() == 1  # one completed execution: the survivor's
    assert stack.worker_pids() == {survivor.pid}


def test_a_drain_whose_task_was_dropped_says_it_was_handed_back(make_stack, nonce):
    """The engine is gone while a worker drains: its claim lapses, the run is dropped, and
    the worker said "stopped (drained)" though the job's step had to run again."""
    stack, worker, job_id, _ = sigterm_mid_step(make_stack, nonce, 8, {})
    stack.engine.kill()

    assert worker.popen.wait(20) == 0
    assert "stopped (tasks handed back)" in worker.log(), worker.log()[-2000:]
    stack.engine.start()
    stack.start_worker("worker")
    assert stack.wait_settled(job_id, timeout=60)["status"] == "resolved"


@pytest.fixture
def slow_engine(stack) -> Iterator[SlowProxy]:
    with slowly_answering(stack.engine.url) as proxy:
        yield proxy


@SHARED_STACK_ON_SQLITE
def test_sigterm_to_gunicorn_drains_in_flight_requests(stack, slow_engine, nonce):
    job_id = f"drain-{nonce}"
    assert stack.begin(job_id, {"nonce": nonce}).status_code == 202
    stack.wait_settled(job_id)
    gateway = stack.start_gateway({"RESONATE_URL": slow_engine.url}, workers=1)

    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(requests.get, f"{gateway.url}/wait", params={"id": job_id},
                                timeout=20)
        assert slow_engine.seen.wait(10)
        gateway.popen.send_signal(signal.SIGTERM)
        answer = in_flight.result()

    assert answer.status_code == 200
    assert answer.json()["status"] == "resolved"
    assert gateway.popen.wait(20) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{gateway.url}/healthz", timeout=2)
