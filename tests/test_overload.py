"""Overload: past ADMISSION_MAX_REQUESTS requests at work, or ENGINE_MAX_CALLS engine calls in
flight, a gateway process refuses the excess at once (503 overloaded + Retry-After) instead of
queueing it; probes and accepted requests still answer, and nothing accepted is lost. The
benchmark that measures it (bench/overload.py) runs once here too, so that it cannot rot."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from async_api import admission
from tests.conftest import SHARED_STACK_ON_SQLITE
from tests.support.http import assert_error
from tests.support.processes import ROOT, wait_until
from tests.support.slow_engine import slowly_answering


@SHARED_STACK_ON_SQLITE
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


REFUSALS = 20  # on one connection: 19 pauses take 95 ms or more; without the pause, 36 ms here


@SHARED_STACK_ON_SQLITE
def test_past_the_admission_limit_the_excess_is_refused_before_the_app(stack, nonce):
    """ADMISSION_MAX_REQUESTS=2 and an engine that takes 2 s per call: two begins hold the two
    places; the next begins are refused at once, as JSON with Retry-After and their request id,
    before anything is stored; the probes and /metrics still answer; both held begins finish.
    A client that ignores Retry-After on its keep-alive connection meets the refused
    connection's pause before each next request is read."""
    with slowly_answering(stack.engine.url, delay=2, posts=True) as engine:
        gateway = stack.start_gateway({"RESONATE_URL": engine.url,
                                       "ADMISSION_MAX_REQUESTS": "2"}, workers=1)
        begin = f"{gateway.url}/begin"
        with ThreadPoolExecutor(2) as pool:
            held = [pool.submit(requests.post, begin, params={"id": f"held-{n}-{nonce}"},
                                json={"n": n}, timeout=20) for n in range(2)]
            wait_until(lambda: engine.seen.is_set(), 10, "a begin to reach the engine")
            time.sleep(0.3)  # the second one too

            started = time.monotonic()
            with requests.Session() as connection:
                refused = [connection.post(begin, params={"id": f"refused-{n}-{nonce}"},
                                           json={"n": n}, headers={"X-Request-ID": f"refused-{n}"},
                                           timeout=20)
                           for n in range(REFUSALS)]
            refused_after = time.monotonic() - started
            assert not any(answer.done() for answer in held)  # the places were still taken
            probes = [requests.get(f"{gateway.url}{path}", timeout=20)
                      for path in ("/healthz", "/readyz", "/metrics")]

            for n, answer in enumerate(refused):
                assert_error(answer, 503, "overloaded")
                assert answer.headers["Retry-After"] == "1"
                assert answer.headers["X-Request-ID"] == f"refused-{n}"
                assert answer.headers["traceparent"]
            assert refused_after < 1.5  # none waited for the 2 s engine
            assert refused_after >= (REFUSALS - 1) * admission.REFUSED_PAUSE_SECONDS
            assert [probe.status_code for probe in probes] == [200, 200, 200]
            assert f"async_api_admission_refused_total {REFUSALS}.0" in probes[2].text
            assert [answer.result().status_code for answer in held] == [202, 202]

    for n in range(2):
        assert stack.wait_settled(f"held-{n}-{nonce}")["status"] == "resolved"
    for n in range(REFUSALS):
        assert not stack.promise_exists(f"refused-{n}-{nonce}")


@SHARED_STACK_ON_SQLITE
def test_held_long_polls_take_no_place(stack, nonce):
    """Long-polls that hold (their job sleeps) stop counting: with ADMISSION_MAX_REQUESTS=2,
    four of them wait while a begin is still accepted, and each answers when it times out. (A
    long-poll counts until it holds: four arriving at the same instant could meet a refusal.)"""
    sleeper = f"sleeper-{nonce}"
    assert stack.begin(sleeper, {"sleep": 30}).status_code == 202
    gateway = stack.start_gateway({"ADMISSION_MAX_REQUESTS": "2"}, workers=1)
    with ThreadPoolExecutor(4) as pool:
        polls = []
        for _ in range(4):
            polls.append(pool.submit(requests.get, f"{gateway.url}/wait",
                                     params={"id": sleeper, "timeout": 5}, timeout=20))
            time.sleep(0.4)  # it read its job once and holds
        accepted = requests.post(f"{gateway.url}/begin", params={"id": f"during-{nonce}"},
                                 json={"nonce": nonce}, timeout=20)
        assert not any(poll.done() for poll in polls)
        assert accepted.status_code == 202, accepted.text
        assert [poll.result().json()["status"] for poll in polls] == ["pending"] * 4


@SHARED_STACK_ON_SQLITE
def test_a_burst_past_the_limit_loses_nothing_accepted(stack, nonce):
    """16 clients at once against ADMISSION_MAX_REQUESTS=1: every 202 settles, and every
    refused id was never stored (a client may send it again)."""
    gateway = stack.start_gateway({"ADMISSION_MAX_REQUESTS": "1"}, workers=1)
    ids = [f"burst-{n}-{nonce}" for n in range(64)]

    def begin(job_id: str) -> int:
        return requests.post(f"{gateway.url}/begin", params={"id": job_id}, json={"id": job_id},
                             timeout=30).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = dict(zip(ids, pool.map(begin, ids), strict=True))
    assert set(statuses.values()) <= {202, 503}, statuses
    for job_id, status in statuses.items():
        if status == 202:
            assert stack.wait_settled(job_id)["status"] == "resolved"
        else:
            assert not stack.promise_exists(job_id)


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is missing (bench/ensure-tools)")
def test_quick_overload_benchmark_prints_its_table_and_loses_nothing():
    """`python -m bench.overload --quick --runs 2` runs for real; no timing is asserted, only
    that it printed every row, each run's and their median, and lost no accepted job."""
    done = subprocess.run([sys.executable, "-m", "bench.overload", "--quick", "--runs", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    rows = {row: next((line for line in lines if line.startswith(row)), None) for row in (
        "sustained POST /begin", "accepted begins (202)", "refused (503/429), of wrk's answers",
        "accepted p50 / p99", "refused p50 / p99", "probe /healthz p50 / p99",
        "probe /readyz p50 / p99", "probe /begin p50 / p99", "wrk status codes",
        "accepted, still pending after the drain", "lost: accepted (202), not stored")}
    assert None not in rows.values(), (rows, done.stdout)
    header = next(line for line in lines if line.startswith("metric "))
    assert header.split()[-7:] == ["run", "1", "run", "2", "median", "of", "runs"], header
    for row in ("accepted, still pending after the drain", "lost: accepted (202), not stored"):
        assert rows[row].split()[-3:] == ["0", "0", "0"], done.stdout  # each run, their sum


def _gate_with(limit: int) -> tuple[admission.Admission, Callable[[int], tuple[str, Any]]]:
    """The gate alone, in front of an app that answers 200, and a call that first sets how
    many places are taken; it returns the status the request got and the answer's body."""
    def app(environ: dict, start_response: Callable) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    gate = admission.Admission(app, limit, retry_after_seconds=1, max_body_bytes=1024)

    def call(in_flight: int, path: str = "/begin") -> tuple[str, Any]:
        gate.in_flight, statuses = in_flight, []
        answer = gate({"PATH_INFO": path, "wsgi.input": io.BytesIO()},
                      lambda status, headers: statuses.append(status))
        return statuses[0].split()[0], answer
    return gate, call


def test_a_refusal_whose_pause_ends_late_narrows_the_gate_for_a_while(monkeypatch):
    """A refused connection's pause that ends 20 ms late or more (the process queues for the
    CPU) leaves the gate a quarter of its places until a second passes with no late pause; one
    that ends on time changes nothing (README, Overload: the gate narrows)."""
    gate, call = _gate_with(limit=8)
    assert call(in_flight=7)[0] == "200"
    status, refusal = call(in_flight=8)
    assert status == "503"
    refusal.close()  # the server's close after sending it: on time, on an idle machine
    assert call(in_flight=7)[0] == "200"

    real_sleep = time.sleep
    monkeypatch.setattr(admission.time, "sleep",
                        lambda seconds: real_sleep(seconds + admission.LATE_PAUSE_SECONDS))
    status, refusal = call(in_flight=8)
    refusal.close()  # late: the CPU was elsewhere
    assert [call(in_flight)[0] for in_flight in (1, 2, 3)] == ["200", "503", "503"]

    gate.narrowed_until = time.monotonic()  # NARROWED_SECONDS later, with no late pause
    assert call(in_flight=7)[0] == "200"


def test_the_narrowed_gate_keeps_at_least_one_place():
    gate, call = _gate_with(limit=1)
    gate.paused(1.0)
    assert call(in_flight=0)[0] == "200"


def test_a_refusal_under_v1_is_a_google_rpc_status():
    """Under /v1/ every error is a google.rpc.Status (README, Errors), the gate's too."""
    _, call = _gate_with(limit=1)
    status, refusal = call(in_flight=1, path="/v1/operations")
    error = json.loads(b"".join(refusal))["error"]
    assert (status, error["code"], error["status"]) == ("503", 503, "UNAVAILABLE")
    assert error["details"][0]["reason"] == "OVERLOADED"
    _, refusal = call(in_flight=1)
    assert json.loads(b"".join(refusal))["error"]["code"] == "overloaded"
