"""Overload: past ENGINE_MAX_CALLS engine calls in flight, a gateway process refuses the excess
at once (503 overloaded + Retry-After) instead of queueing it; probes and accepted requests
still answer."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support.http import assert_error
from tests.support.slow_engine import slowly_answering


def test_the_excess_is_refused_at_once_while_probes_and_accepted_requests_answer(stack, nonce):
    job_id = f"overload-{nonce}"
    assert stack.begin(job_id, {"nonce": nonce}).status_code == 202
    stack.wait_settled(job_id)
    with slowly_answering(stack.engine.url, delay=2) as engine:
        # One process with one slot: its cache of settled jobs is empty, so /wait asks the engine.
        gateway = stack.start_gateway({"RESONATE_URL": engine.url, "ENGINE_MAX_CALLS": "1"},
                                      workers=1)
        wait = f"{gateway.url}/wait"
        with ThreadPoolExecutor(2) as pool:
            accepted = pool.submit(requests.get, wait, params={"id": job_id}, timeout=20)
            assert engine.seen.wait(10)  # the one slot is taken for 2 s
            readiness = pool.submit(requests.get, f"{gateway.url}/readyz", timeout=20)

            started = time.monotonic()
            refused = requests.get(wait, params={"id": job_id}, timeout=20)
            refused_after = time.monotonic() - started
            health = requests.get(f"{gateway.url}/healthz", timeout=5)

            assert_error(refused, 503, "overloaded")
            assert refused.headers["Retry-After"] == "1"
            assert refused_after < 1.0  # 50 ms of waiting for a slot, not the 2 s of the call
            assert not accepted.done()  # the refusal came while the slot was still held
            assert health.status_code == 200
            assert readiness.result().status_code == 200  # probes take no slot
            assert accepted.result().status_code == 200
            assert accepted.result().json()["status"] == "resolved"
