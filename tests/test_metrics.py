"""Prometheus metrics: the gateway's /metrics adds up its gunicorn processes exactly, the engine
calls and jobs are counted, a worker serves its own on WORKER_METRICS_PORT, and /metrics takes
METRICS_TOKEN (or the API's tokens). Real processes on the sqlite store; auth and route labels
in the test's process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.http import assert_error
from tests.support.in_process import offline_gateway
from tests.support.processes import Process, free_port, wait_until
from tests.support.stack import Stack

Scrape = dict[tuple[str, frozenset], float]
STALE_ROUTE = "/counted-by-a-previous-run"
# What a gateway that ran before in the same PROMETHEUS_MULTIPROC_DIR would have left there.
STALE_COUNT = (
    "import prometheus_client as p; p.Counter('async_api_http_requests', '', "
    f"['method', 'route', 'status']).labels('GET', '{STALE_ROUTE}', '200').inc(1000)")


def parsed(text: str) -> Scrape:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def scrape(url: str) -> Scrape:
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    return parsed(answer.text)


def value(scraped: Scrape, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def grew(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def total(scraped: Scrape, name: str) -> float:
    return sum(v for (sample, _), v in scraped.items() if sample == name)


class Observed(Stack):
    """A stack whose worker serves metrics and whose gateway runs 2 processes."""

    worker: Process
    worker_metrics: str
    multiproc_dir: Path


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    stack = Observed(tmp_path_factory.mktemp("metrics"))
    stack.multiproc_dir = stack.dir / "multiproc"
    stack.multiproc_dir.mkdir()
    subprocess.run([sys.executable, "-c", STALE_COUNT], check=True, timeout=60,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(stack.multiproc_dir)})
    assert list(stack.multiproc_dir.glob("*.db"))
    try:
        stack.engine.start()
        port = free_port()
        stack.worker = stack.start_worker("worker", env={"WORKER_METRICS_PORT": str(port)})
        stack.worker_metrics = f"http://127.0.0.1:{port}/metrics"
        stack.start_gateway({"PROMETHEUS_MULTIPROC_DIR": str(stack.multiproc_dir)}, workers=2)
        yield stack
    finally:
        stack.stop()


def healthz_served_by(gateway: Process) -> set[int]:
    """The gunicorn workers whose request lines show they answered /healthz."""
    return {line["pid"] for line in gateway.json_lines()
            if line["logger"] == "async_api.requests" and line.get("route") == "/healthz"}


def test_counts_add_up_across_the_gateway_processes_and_outlive_them(observed):
    gateway = observed.gateways[0]
    url = f"{gateway.url}/metrics"
    processes = set(gateway.children())
    assert len(processes) == 2
    before = scrape(url)
    assert not any(dict(labels).get("route") == STALE_ROUTE for _, labels in before)

    sent = 0
    with ThreadPoolExecutor(8) as pool:  # concurrent, so that both processes take connections
        while healthz_served_by(gateway) != processes and sent < 3000:
            statuses = list(pool.map(
                lambda _: requests.get(f"{gateway.url}/healthz", timeout=10).status_code,
                range(100)))
            assert statuses == [200] * 100
            sent += 100
    assert healthz_served_by(gateway) == processes
    after = scrape(url)
    labels = {"method": "GET", "route": "/healthz"}
    assert grew(before, after, "async_api_http_requests_total", status="200", **labels) == sent
    assert grew(before, after, "async_api_http_request_duration_seconds_count", **labels) == sent

    killed = processes.pop()
    os.kill(killed, signal.SIGKILL)
    wait_until(lambda: len(set(gateway.children()) - {killed}) == 2, 30,
               "gunicorn to replace the killed worker")
    later = scrape(url)  # the killed process's counts stay: a counter never goes down
    assert value(later, "async_api_http_requests_total", status="200", **labels) == \
        value(after, "async_api_http_requests_total", status="200", **labels)


def test_jobs_engine_calls_and_their_errors_are_counted(observed, nonce):
    url = f"{observed.gateway_url}/metrics"
    job_ids = [f"metrics-{nonce}-{n}" for n in range(4)]
    before = scrape(url)
    for job_id in job_ids:
        assert observed.begin(job_id, {"nonce": nonce}).status_code == 202
    assert observed.begin(job_ids[0], {"nonce": nonce}).status_code == 202  # a retry: no new job
    for n in range(3):
        assert_error(observed.poll(f"missing-{nonce}-{n}"), 404, "not_found")
    after = scrape(url)

    assert grew(before, after, "async_api_jobs_started_total", function="foo") == 4
    assert grew(before, after, "async_api_http_requests_total", method="POST", route="/begin",
                status="202") == 5
    assert grew(before, after, "async_api_http_requests_total", method="GET", route="/wait",
                status="404") == 3
    assert grew(before, after, "async_api_engine_call_duration_seconds_count",
                call="POST /promises") == 5
    assert grew(before, after, "async_api_engine_call_errors_total", call="GET /promises/{id}",
                error="404") == 3
    for job_id in job_ids:  # done before the next test counts the worker's tasks
        assert observed.wait_settled(job_id)["status"] == "resolved"


def worker_idle(url: str) -> Scrape | None:
    """The worker's metrics once every task it claimed has ended (completed or given up)."""
    scraped = scrape(url)
    ended = (total(scraped, "async_api_worker_tasks_completed_total")
             + total(scraped, "async_api_worker_tasks_failed_total"))
    return scraped if ended == total(scraped, "async_api_worker_tasks_claimed_total") else None


def test_the_worker_serves_its_task_and_step_metrics_on_its_port(observed, nonce):
    before = wait_until(lambda: worker_idle(observed.worker_metrics), 15, "the worker to idle")
    bodies = {f"done-{nonce}": {"nonce": nonce}, f"slept-{nonce}": {"sleep": 1, "nonce": nonce},
              f"failed-{nonce}": {"fail": "on purpose", "nonce": nonce}}
    for job_id, body in bodies.items():
        assert observed.begin(job_id, body).status_code == 202
    # A job canceled while it sleeps: the task that would resume it is completed unrun.
    canceled = f"canceled-{nonce}"
    assert observed.begin(canceled, {"sleep": 2, "nonce": nonce}).status_code == 202
    wait_until(lambda: grew(before, scrape(observed.worker_metrics),
                            "async_api_worker_tasks_completed_total", function="foo",
                            outcome="suspended") >= 2, 15, f"{canceled} to sleep", interval=0.05)
    assert observed.post(f"/jobs/{canceled}/cancel").status_code == 200
    for job_id in bodies:
        observed.wait_settled(job_id)

    def settled_metrics() -> Scrape | None:
        scraped = worker_idle(observed.worker_metrics)
        done = scraped and grew(before, scraped, "async_api_worker_tasks_claimed_total",
                                function="foo") >= 6
        return scraped if done else None
    after = wait_until(settled_metrics, 15, "the worker to count the tasks")

    def foo(name: str, **labels: str) -> float:
        return grew(before, after, name, function="foo", **labels)
    assert foo("async_api_worker_tasks_claimed_total") == 6  # each sleeper's twice
    assert foo("async_api_worker_tasks_completed_total", outcome="resolved") == 2
    assert foo("async_api_worker_tasks_completed_total", outcome="suspended") == 2
    assert foo("async_api_worker_tasks_completed_total", outcome="unrun") == 1
    assert foo("async_api_worker_tasks_completed_total", outcome="rejected") == 1
    assert foo("async_api_worker_tasks_failed_total") == 0
    assert foo("async_api_worker_task_duration_seconds_count", outcome="resolved") == 2
    assert foo("async_api_worker_step_duration_seconds_count", step="foo_effect") == 3
    assert grew(before, after, "async_api_engine_call_duration_seconds_count",
                call="POST /tasks/claim") >= 4


def test_a_taken_metrics_port_costs_the_metrics_not_the_worker(observed, nonce):
    port = observed.worker_metrics.rsplit(":", 1)[1].split("/")[0]
    pricing = observed.start_worker("pricing", env={"WORKER_METRICS_PORT": port})
    wait_until(lambda: any(line["level"] == "ERROR" and "metrics not served" in line["msg"]
                           for line in pricing.json_lines()), 10, "the error line")
    quote = observed.post("/price-quote", {"sku": f"sku-{nonce}", "qty": 2})
    assert quote.status_code == 200, quote.text  # the worker serves its group all the same
    assert pricing.alive()


def test_an_unset_multiprocess_dir_is_a_fresh_one_removed_on_exit(observed):
    gateway = observed.start_gateway({"PROMETHEUS_MULTIPROC_DIR": ""}, workers=1)  # unset
    (said,) = [line["msg"] for line in gateway.json_lines()
               if line["msg"].startswith("metrics: multiprocess directory ")]
    directory = Path(said.rsplit(" ", 1)[1])
    assert directory != observed.multiproc_dir and directory.is_dir()
    scraped = scrape(f"{gateway.url}/metrics")
    assert value(scraped, "async_api_http_requests_total", method="GET", route="/healthz",
                 status="200") >= 1  # the stack's own probe, counted in that directory
    gateway.popen.send_signal(signal.SIGHUP)  # a reload reads gunicorn.conf.py afresh
    wait_until(lambda: "Hang up: Master" in gateway.log(), 10, "the reload")
    gateway.stop()
    assert not directory.exists()  # a reload once forgot it had made it



def test_a_killed_gateways_multiprocess_dir_goes_when_the_next_one_starts(observed, tmp_path):
    made = {"PROMETHEUS_MULTIPROC_DIR": "", "TMPDIR": str(tmp_path)}  # unset: a fresh one
    killed = observed.start_gateway(made, workers=1)
    (left,) = tmp_path.glob("async-api-metrics-*")
    killed.kill(group=True)  # no on_exit
    assert left.is_dir()
    observed.start_gateway(made, workers=1)
    (fresh,) = tmp_path.glob("async-api-metrics-*")
    assert fresh != left and not left.exists()

# --- in the test's process: no engine, no gunicorn ------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_metrics_token_alone_opens_metrics_and_nothing_else():
    client = offline_gateway(api_tokens=("api-token",), metrics_token="scrape-token")
    assert_error(client.get("/metrics"), 401, "unauthorized")
    assert_error(client.get("/metrics", headers=bearer("api-token")), 401, "unauthorized")
    assert_error(client.get("/wait?id=x", headers=bearer("scrape-token")), 401, "unauthorized")
    answer = client.get("/metrics", headers=bearer("scrape-token"))
    assert answer.status_code == 200
    assert b"async_api_http_requests_total" in answer.data


def test_without_a_metrics_token_metrics_takes_the_api_tokens():
    client = offline_gateway(api_tokens=("api-token",))
    assert_error(client.get("/metrics"), 401, "unauthorized")
    assert client.get("/metrics", headers=bearer("api-token")).status_code == 200
    assert offline_gateway().get("/metrics").status_code == 200  # auth off: open


def test_a_metrics_token_leaves_the_api_as_it_was():
    client = offline_gateway(metrics_token="scrape-token")
    assert_error(client.get("/metrics"), 401, "unauthorized")
    assert_error(client.get("/wait"), 400, "bad_request")  # past auth: validation answers


def test_requests_are_counted_by_url_rule_not_by_path(nonce):
    client = offline_gateway()
    before = parsed(client.get("/metrics").get_data(as_text=True))
    for job_id in (f"a-{nonce}", f"b-{nonce}", f"c-{nonce}"):
        assert_error(client.get(f"/jobs/{job_id}"), 503, "engine_unavailable")
    assert_error(client.get(f"/no-such-route-{nonce}"), 404, "not_found")
    for odd in ("AAAA", "BBBB", f"M{nonce.upper()}"):  # any token: one series, not one each
        client.open("/begin", method=odd)
    after = parsed(client.get("/metrics").get_data(as_text=True))
    assert grew(before, after, "async_api_http_requests_total", method="other",
                route="(unmatched)", status="405") == 3
    assert grew(before, after, "async_api_http_requests_total", method="GET",
                route="/jobs/<id:job_id>", status="503") == 3
    assert grew(before, after, "async_api_http_requests_total", method="GET",
                route="(unmatched)", status="404") == 1
    assert not any(nonce in dict(labels).get("route", "") for _, labels in after)
    assert grew(before, after, "async_api_engine_call_errors_total", call="GET /promises/{id}",
                error="unreachable") == 3  # the offline gateway's engine refuses connections


def test_a_call_refused_for_want_of_a_slot_is_counted_busy(nonce):
    client = offline_gateway(engine_max_calls=0)  # every engine call finds no free slot
    before = parsed(client.get("/metrics").get_data(as_text=True))
    assert_error(client.get(f"/jobs/busy-{nonce}"), 503, "overloaded")
    after = parsed(client.get("/metrics").get_data(as_text=True))
    assert grew(before, after, "async_api_engine_call_errors_total", call="GET /promises/{id}",
                error="busy") == 1

