"""Same-process mode: gunicorn's worker processes also serve worker groups; no `python -m
workers` process runs. The seed contract and a crash mid-job hold as with dedicated workers."""

from __future__ import annotations

import os
import signal

import pytest

from tests.support.http import assert_error
from tests.support.processes import wait_until
from tests.support.slow_clients import SlowClients
from tests.support.stack import Stack


@pytest.fixture
def embedded(make_stack) -> Stack:
    stack = make_stack()
    stack.engine.start()
    stack.start_gateway({"EMBEDDED_WORKER_GROUPS": "worker,pricing"}, workers=2)
    assert not stack.workers
    return stack


def test_begin_wait_and_dedup_with_workers_inside_the_gateway(embedded, nonce):
    job_id, body = f"embedded-{nonce}", {"nonce": nonce}

    assert embedded.begin(job_id, body).status_code == 202
    settled = embedded.wait_settled(job_id)
    assert settled["status"] == "resolved"
    again = embedded.begin(job_id, body)
    assert (again.status_code, again.json()["status"]) == (202, "resolved")
    assert_error(embedded.begin(job_id, {"other": nonce}), 409, "conflict")
    assert embedded.ran([body]).total() == 1
    gateway_pids = set(embedded.gateways[0].children())
    assert embedded.worker_pids() <= gateway_pids  # foo ran inside a gunicorn worker


def test_a_gateway_process_killed_mid_job_is_taken_over_by_another(embedded, nonce):
    job_id, body = f"embedded-held-{nonce}", {"work": 4, "nonce": nonce}
    gateway = embedded.gateways[0]

    holder = embedded.begin_held_job(job_id, body)
    assert holder in gateway.children()
    os.kill(holder, signal.SIGKILL)

    assert embedded.wait_settled(job_id, timeout=60)["status"] == "resolved"
    assert embedded.ran([body]).total() == 1  # one completed execution...
    assert embedded.ran([body], "foo:started").total() == 2  # ...after the killed one
    assert holder not in embedded.worker_pids()
    assert gateway.alive()


def test_sigterm_drains_the_embedded_workers_before_the_gateway_exits(embedded, nonce):
    job_id, body = f"embedded-drain-{nonce}", {"work": 3, "nonce": nonce}
    gateway = embedded.gateways[0]

    embedded.begin_held_job(job_id, body)
    gateway.stop()  # SIGTERM to the master, which stops its workers

    assert embedded.promise_state(job_id) == "RESOLVED"  # finished before the exit
    assert embedded.ran([body], "foo:started").total() == 1
    assert "draining 1 task(s)" in gateway.log()
    assert "stopped (drained)" in gateway.log()


def test_sigterm_drains_at_once_and_within_the_graceful_timeout_while_a_request_lingers(
        make_stack, nonce):
    """The drain begins at the SIGTERM, not once the requests in flight have ended (a slow
    client held them the whole graceful timeout), and ends before the master's SIGKILL."""
    stack = make_stack()
    stack.engine.start()
    env = {"EMBEDDED_WORKER_GROUPS": "worker", "GUNICORN_GRACEFUL_TIMEOUT": "4"}
    gateway = stack.start_gateway(env, workers=1)
    held_id, held = f"embedded-held-{nonce}", {"work": 8, "nonce": nonce}
    late_id, late = f"embedded-late-{nonce}", {"sleep": 3, "nonce": nonce}
    stack.begin_held_job(held_id, held)
    assert stack.begin(late_id, late).status_code == 202
    wait_until(lambda: any(line.get("job_id") == late_id and line.get("outcome") == "suspended"
                           for line in gateway.json_lines()), 10, "the late job to sleep")

    with SlowClients(gateway.url, 1, "body") as slow:  # a request in flight until it is cut
        wait_until(lambda: slow.rounds >= 2 and slow.waiting() == 1, 5, "the request to linger")
        gateway.stop()

    log = gateway.log()
    assert "stopping: draining 1 task(s)" in log
    assert "stopped (tasks handed back)" in log  # said before the master's SIGKILL
    assert stack.ran([late]).total() == 0  # its wake-up, after the SIGTERM, was not taken
    successor = stack.start_gateway(env, workers=1)
    stack.gateway_url = successor.url
    assert stack.wait_settled(late_id)["status"] == "resolved"
    assert stack.wait_settled(held_id, timeout=60)["status"] == "resolved"
    assert stack.ran([held]).total() == 1
    assert stack.worker_pids("foo", [late, held]) <= set(successor.children())
