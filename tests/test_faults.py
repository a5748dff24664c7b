"""Fault tests: real processes are SIGKILLed; nothing is lost and nothing runs twice."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import requests

from tests.conftest import GATEWAY_ENV
from tests.support.http import Client, approval_path, approval_webhook, assert_error
from tests.support.processes import wait_until
from tests.support.stack import Stack
from workers import ledger

SECRET = GATEWAY_ENV["WEBHOOK_SECRET"]


def test_a_killed_worker_is_replaced_and_the_job_finishes_once(make_stack, store, nonce):
    stack = make_stack(store=store)
    doomed = stack.start(["worker"])["worker"]
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
    """The server is killed while its only worker holds a task inside a step (4 s of work):
    the step finishes during the outage or after it, and the job still completes once."""
    stack = make_stack(store=store)
    worker = stack.start(["worker"])["worker"]
    done_id, held_id = f"before-{nonce}", f"during-{nonce}"
    stack.begin(done_id, {"nonce": nonce})
    before = stack.wait_settled(done_id)
    held = {"work": 4, "nonce": nonce}
    stack.begin_held_job(held_id, held)

    assert stack.ran([held]).total() == 0, "the step must still be running at the kill"
    stack.engine.kill()
    outage = stack.poll(held_id)  # a settled job may be answered from the gateway's memory
    assert_error(outage, 503, "engine_unavailable")
    assert outage.headers["Retry-After"]
    assert_error(stack.get("/readyz"), 503, "engine_unavailable")
    stack.engine.start()  # same store, same ports

    assert stack.poll(done_id).json() == before
    settled = stack.wait_settled(held_id, timeout=60)
    assert settled["status"] == "resolved"
    assert worker.alive(), "the worker must ride out the outage, not exit"
    assert stack.ran([held]).total() == 1


def begin_all(client: Client, nonce: str, count: int, threads: int = 3) -> dict:
    """Begins `count` jobs from `threads` client threads; returns {job_id: (body, answer)}."""
    jobs = {f"load-{nonce}-{n}": {"nonce": nonce, "n": n} for n in range(count)}

    def begin(job_id: str) -> tuple[str, dict, requests.Response]:
        return job_id, jobs[job_id], client.begin(job_id, jobs[job_id])

    with ThreadPoolExecutor(threads) as pool:
        return {job_id: (body, answer) for job_id, body, answer in pool.map(begin, jobs)}


def assert_all_ran_once(stack: Stack, jobs: dict) -> None:
    """Every accepted job resolves, a retried begin names the same job, foo ran once for each."""
    for job_id, (body, answer) in jobs.items():
        assert answer.status_code == 202, answer.text
        assert answer.json()["promise"] == job_id
        assert stack.wait_settled(job_id, timeout=60)["status"] == "resolved"
        again = stack.begin(job_id, body)
        assert (again.status_code, again.json()["promise"]) == (202, job_id)
        assert again.json()["status"] == "resolved"
    ran = stack.ran(body for body, _ in jobs.values())
    assert sorted(ran.values()) == [1] * len(jobs), ran


@pytest.mark.parametrize("target", ["gunicorn worker", "whole gunicorn"])
def test_a_killed_gateway_loses_no_accepted_job(make_stack, nonce, target):
    """SIGKILL to the gateway's only worker process (its master forks another) or to the whole
    gunicorn process group (clients move to a new gateway) while clients begin jobs, and while
    one request is surely in flight: a quote that no worker computes, which the gateway holds
    for QUOTE_TIMEOUT_SECONDS (3 s). That request is dropped; no accepted job is lost."""
    stack = make_stack()
    stack.engine.start()
    stack.start_worker("worker")  # no group "pricing": the quote stays in the gateway's hands
    doomed = stack.start_gateway(workers=1)
    url = [doomed.url]
    client = Client(lambda: url[0])
    held_quote = {"sku": f"held-{nonce}", "qty": 1}

    def kill_when_busy() -> Future:
        wait_until(lambda: len(client.answers) >= 15, 30, "clients to get going")
        quote = in_flight.submit(requests.post, f"{doomed.url}/price-quote", json=held_quote,
                                 timeout=20)
        wait_until(lambda: stack.promise_exists(f"quote:held-{nonce}:1"), 10,
                   "the quote to be in the gateway's hands")
        if target == "gunicorn worker":
            os.kill(doomed.children()[0], signal.SIGKILL)  # the master forks a new one
        else:
            doomed.kill(group=True)
            url[0] = stack.start_gateway().url
        return quote

    with ThreadPoolExecutor(1) as in_flight, ThreadPoolExecutor(1) as side:
        killer = side.submit(kill_when_busy)
        jobs = begin_all(client, nonce, 60)
        quote = killer.result()
        with pytest.raises(requests.ConnectionError):
            quote.result()  # the kill took effect: it dropped the request it cut

    if target == "whole gunicorn":
        assert not doomed.alive()
        stack.gateway_url = url[0]
    else:
        assert doomed.alive()
    assert_all_ran_once(stack, jobs)


def test_an_engine_outage_under_load_answers_503_and_loses_nothing(make_stack, nonce):
    stack = make_stack()
    stack.engine.start()
    worker = stack.start_worker("worker")
    stack.start_gateway()
    client = Client(lambda: stack.gateway_url)
    polled = threading.Event()

    def outage() -> None:
        wait_until(lambda: len(client.answers) >= 10, 30, "clients to get going")
        stack.engine.kill()
        # an outage that several requests ran into, however slowly they come
        wait_until(lambda: sum(a.status_code == 503 for a in client.answers) >= 5, 15,
                   "clients to see the outage")
        stack.engine.start()
        polled.set()

    def poll_while_loaded() -> None:
        while not polled.is_set():
            client.poll(f"load-{nonce}-0")

    with ThreadPoolExecutor(2) as side:
        side.submit(poll_while_loaded)
        restart = side.submit(outage)
        jobs = begin_all(client, nonce, 45)
        restart.result()

    statuses = {answer.status_code for answer in client.answers}
    assert 503 in statuses
    assert statuses <= {200, 202, 404, 503}, statuses  # 404: polled before its begin landed
    for answer in client.answers:
        assert answer.headers["Content-Type"] == "application/json"
        if answer.status_code == 503:
            assert answer.json()["error"]["code"] == "engine_unavailable"
            assert int(answer.headers["Retry-After"]) >= 1
    assert_all_ran_once(stack, jobs)
    assert worker.alive()
    # each gateway process said the outage once, at WARNING, and its end
    said: dict[int, list[str]] = {}
    for line in stack.gateways[0].json_lines():
        if line["level"] == "WARNING" and "Resonate server at" in line["msg"]:
            said.setdefault(line["pid"], []).append(
                "down" if "unavailable" in line["msg"] else "back")
    assert said, "the outage went unsaid"
    for pid, turns in said.items():
        assert turns == ["down", "back"] * (len(turns) // 2) and turns, (pid, turns)


def test_two_gateways_and_three_workers_share_the_work(make_stack, nonce):
    stack = make_stack()
    stack.engine.start()
    workers = [stack.start_worker("worker") for _ in range(3)]
    gateways = [stack.start_gateway(workers=1) for _ in range(2)]
    turn = iter(range(10**6))
    client = Client(lambda: gateways[next(turn) % 2].url)

    jobs = begin_all(client, nonce, 60, threads=6)

    assert_all_ran_once(stack, jobs)
    assert {a.url.split("/begin")[0] for a in client.answers} == {g.url for g in gateways}
    pids = stack.worker_pids()
    assert pids <= {w.pid for w in workers}
    assert len(pids) > 1, "one worker did all the work"


def test_a_worker_killed_while_holding_a_task_is_taken_over(make_stack, nonce):
    """The step blocks 4 s inside the worker, which holds the task (heartbeats every 2 s, ttl 5 s).
    SIGKILL mid-step: heartbeats stop, the claim expires, the server re-enqueues the task (1 s
    delay in tests) and the survivor replays foo. The killed execution never completed, so the
    step runs again from its start: exactly once means one *completed* execution (one ledger
    row), next to two start marks (the killed attempt and the survivor's)."""
    stack = make_stack()
    stack.engine.start()
    workers = {w.pid: w for w in (stack.start_worker("worker"), stack.start_worker("worker"))}
    stack.start_gateway()
    job_id, body = f"held-{nonce}", {"work": 4, "nonce": nonce}

    workers.pop(stack.begin_held_job(job_id, body)).kill()
    (survivor,) = workers

    assert stack.wait_settled(job_id, timeout=60)["status"] == "resolved"
    assert stack.ran([body]).total() == 1  # one completed execution...
    assert stack.ran([body], "foo:started").total() == 2  # ...of two that started
    assert stack.worker_pids() == {survivor}


def test_heartbeats_keep_a_step_longer_than_the_claim_ttl_on_its_worker(make_stack, nonce):
    """9 s inside one step, almost twice the 5 s claim ttl: only heartbeats keep the claim, so
    without them the other worker would take the task over and start the step again."""
    stack = make_stack()
    stack.engine.start()
    stack.start_worker("worker")
    stack.start_worker("worker")
    stack.start_gateway()
    job_id, body = f"long-{nonce}", {"work": 9, "nonce": nonce}

    holder = stack.begin_held_job(job_id, body)

    assert stack.wait_settled(job_id, timeout=60)["status"] == "resolved"
    assert stack.ran([body], "foo:started").total() == 1  # never taken over
    assert stack.ran([body]).total() == 1
    assert stack.worker_pids() == {holder}


def test_a_claim_that_ends_with_its_run_is_not_said_to_expire(make_stack, nonce):
    """Heartbeats every 50 ms race the ends of 150 short jobs (a tenth of them sleep first,
    so their first task ends suspended). A claim whose task its run completed while a heartbeat
    was on its way is no expired claim: it was logged as a WARNING "claim ... expired on the
    server", 12 to 20 times a run, in every deploy's logs, with nothing lost or run twice."""
    stack = make_stack()
    worker = stack.start(["worker"], worker_env={"HEARTBEAT_SECONDS": "0.05"})["worker"]
    jobs = {f"short-{nonce}-{n}": {"nonce": nonce, "n": n, "work": n % 5 * 0.05,
                                   **({"sleep": 1} if n % 10 == 0 else {})}
            for n in range(150)}

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda job_id: stack.begin(job_id, jobs[job_id]), jobs))

    assert {answer.status_code for answer in answers} == {202}
    for job_id in jobs:
        assert stack.wait_settled(job_id)["status"] == "resolved"
    assert sorted(stack.ran(jobs.values()).values()) == [1] * len(jobs)
    said = [line["msg"] for line in worker.json_lines()
            if "expired on the server" in line["msg"] or line.get("outcome") == "dropped"]
    assert said == []


def test_a_frozen_worker_does_not_hold_up_the_resumes_of_its_jobs(make_stack, nonce):
    """A worker frozen (SIGSTOP: a hung process keeps its connection open) while its jobs wait
    for a durable sleep and an approval: their resume tasks are offered to it first, since it
    holds them in memory, then to any worker of the group (server patch 0013). They used to be
    offered to the frozen one again and again while another worker sat idle."""
    stack = make_stack()
    stack.engine.start()
    frozen = stack.start_worker("worker")
    stack.start_gateway()
    napping, order_id = f"nap-{nonce}", f"F-{nonce}"
    assert stack.begin(napping, {"sleep": 3, "nonce": nonce}).status_code == 202
    assert stack.post(f"/orders/{order_id}/approve-and-ship").status_code == 202
    wait_until(lambda: stack.get(f"/jobs/order:{order_id}").json()["status"]
               == "waiting_for_approval" and stack.promise_exists(f"{napping}.1"), 15,
               "both jobs to wait")
    stack.start_worker("worker")
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        approved = requests.post(f"{stack.gateway_url}{approval_path(order_id)}", timeout=10,
                                 **approval_webhook(order_id, {"approved": True}, SECRET))
        assert approved.status_code == 200, approved.text
        for job_id in (napping, f"order:{order_id}"):
            assert stack.job_settled(job_id, timeout=20)["status"] == "resolved"
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    assert ledger.count("ship", order_id, stack.ledger_path) == 1
