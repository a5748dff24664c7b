"""Fault tests: real processes are SIGKILLed; nothing is lost and nothing runs twice."""

from __future__ import annotations

import requests

from tests.support import wait_until
from workers import ledger


def test_a_killed_worker_is_replaced_and_the_job_finishes_once(make_stack, store, nonce):
    stack = make_stack(store=store)
    stack.engine.start()
    doomed = stack.start_worker("worker")
    stack.start_gateway()
    job_id, body = f"slow-{nonce}", {"sleep": 3, "nonce": nonce}

    assert stack.begin(job_id, body).status_code == 202
    wait_until(lambda: stack.promise_exists(f"{job_id}.1"), 15, "the worker to start sleeping")
    doomed.kill()
    stack.start_worker("worker")

    settled = stack.wait_settled(job_id, timeout=60)
    assert settled["status"] == "resolved"
    assert stack.poll(job_id).json() == settled
    key = f'{{"nonce": "{nonce}", "sleep": 3}}'
    assert ledger.count("foo", key, stack.ledger_path) == 1


def test_a_restarted_server_keeps_results_and_finishes_pending_work(make_stack, store, nonce):
    stack = make_stack(store=store)
    stack.engine.start()
    worker = stack.start_worker("worker")
    stack.start_gateway()
    done_id, pending_id = f"before-{nonce}", f"during-{nonce}"
    stack.begin(done_id, {"nonce": nonce})
    before = stack.wait_settled(done_id)
    stack.begin(pending_id, {"sleep": 2, "nonce": nonce})
    wait_until(lambda: stack.promise_exists(f"{pending_id}.1"), 15, "the job to start sleeping")

    stack.engine.kill()
    outage = stack.poll(done_id)
    assert outage.status_code == 503
    assert outage.json()["error"]["code"] == "engine_unavailable"
    assert outage.headers["Retry-After"]
    assert requests.get(f"{stack.gateway_url}/readyz", timeout=5).status_code == 503
    stack.engine.start()  # same sqlite file, same ports

    assert stack.poll(done_id).json() == before
    settled = stack.wait_settled(pending_id, timeout=60)
    assert settled["status"] == "resolved"
    assert worker.alive(), "the worker must ride out the outage, not exit"
    key = f'{{"nonce": "{nonce}", "sleep": 2}}'
    assert ledger.count("foo", key, stack.ledger_path) == 1
