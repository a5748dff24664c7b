"""Prometheus metrics of the gateway and the workers (prometheus-client).

Flask-free, like logs.py: the engine layer and the workers record here too.

The gateway's gunicorn worker processes each write their samples to files in
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode; gunicorn.conf.py prepares the
directory before the first fork), and /metrics adds the files up: whichever process answers a
scrape, the counts are the whole gateway's. A `python -m workers` process serves its own
metrics on WORKER_METRICS_PORT instead (`serve`).
"""

from __future__ import annotations

import functools
import logging
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    start_http_server,
)

from async_api import logs

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: from an engine call's millisecond to a long-poll's 30 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
           60.0)

_log = logging.getLogger(__name__)
# A *_created series per counter and histogram doubles what a worker exports (the gateway's
# multiprocess files never had them); Prometheus does not need them.
disable_created_metrics()

# --- the gateway ----------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "async_api_http_requests", "Requests the gateway answered, by URL rule and status.",
    ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "async_api_http_request_duration_seconds", "Time the gateway spent on a request.",
    ["method", "route"], buckets=BUCKETS)
ADMISSION_REFUSED = Counter(
    "async_api_admission_refused",
    "Requests refused with 503 overloaded before the app saw them: the process had "
    "ADMISSION_MAX_REQUESTS at work (async_api.admission).")
ADMISSION_REFUSED_EARLY = Counter(
    "async_api_admission_refused_early",
    "Of those refusals, the ones answered from the request's bytes before gunicorn parsed "
    "them, at about a third of the CPU (async_api.early_refusal).")
ADMISSION_NARROWED = Counter(
    "async_api_admission_narrowed",
    "Times the admission gate went down to a quarter of its places because a refused "
    "connection's pause ended late: the process was short of CPU (async_api.admission).")
JOBS_STARTED = Counter(
    "async_api_jobs_started",
    "Jobs created by jobs.start; a retry that finds its job already there is not counted.",
    ["function"])

# --- the engine layer (gateway and workers) -------------------------------------------------------

ENGINE_SECONDS = Histogram(
    "async_api_engine_call_duration_seconds",
    "One HTTP call to the Resonate server, however it ended.", ["call"], buckets=BUCKETS)
ENGINE_ERRORS = Counter(
    "async_api_engine_call_errors",
    "Engine calls that failed: unreachable (no answer in time), busy (the gateway process had "
    "no free slot), or the HTTP status the server answered (404 included).",
    ["call", "error"])

# --- the workers ----------------------------------------------------------------------------------

TASKS_CLAIMED = Counter("async_api_worker_tasks_claimed", "Tasks this worker claimed.",
                        ["function"])
TASKS_COMPLETED = Counter(
    "async_api_worker_tasks_completed",
    "Tasks completed, by outcome: resolved or rejected (the function returned or raised), "
    "suspended (it waits for a sleep, a signal or another function; a later task resumes it), "
    "canceled or timedout (its job was settled while it ran), unrun (its job was settled "
    "before the task was claimed: nothing ran).",
    ["function", "outcome"])
TASKS_FAILED = Counter(
    "async_api_worker_tasks_failed",
    "Tasks given up without completing them (claim lost, a write refused, an unexpected "
    "error); the server hands them out again.", ["function"])
TASK_SECONDS = Histogram(
    "async_api_worker_task_duration_seconds", "From a task's claim to its end, by outcome.",
    ["function", "outcome"], buckets=BUCKETS)
STEP_SECONDS = Histogram(
    "async_api_worker_step_duration_seconds",
    "One run of a checkpointed step, by durable function and step; a replay skips a "
    "completed step, so it is counted once per real run.", ["function", "step"],
    buckets=BUCKETS)


# The methods counted by name; any other is counted as "other": gunicorn lets any token through
# as a method, and each would be a series of its own for as long as the gateway runs.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# labels() finds a series under a lock on every call; these keep the series once found (-3 %
# of a GET /wait's CPU).
@functools.lru_cache(maxsize=1024)
def _http_series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    method = method if method in HTTP_METHODS else "other"
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_SECONDS.labels(method, route)


@functools.lru_cache(maxsize=256)
def _engine_timer(call: str) -> Histogram:
    return ENGINE_SECONDS.labels(call)


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    """One request the gateway answered."""
    count, timer = _http_series(method, route, status)
    count.inc()
    timer.observe(seconds)


def engine_call(call: str, seconds: float, error: str | None = None) -> None:
    _engine_timer(call).observe(seconds)
    if error is not None:
        ENGINE_ERRORS.labels(call, error).inc()


def exposition() -> tuple[bytes, str]:
    """What a scrape gets: under gunicorn, the sum of every process that wrote to the
    multiprocess directory, dead ones included (a counter must not drop when a worker is
    replaced); otherwise this process's own metrics."""
    if not os.environ.get(MULTIPROC_DIR):
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve(port: int) -> bool:
    """Serves this process's metrics on `port` (all interfaces) from a thread. A port already
    taken costs the metrics, not the worker: it logs an error and keeps serving its tasks."""
    try:
        start_http_server(port)
    except OSError as exc:
        _log.error("metrics not served: port %s (WORKER_METRICS_PORT) is not free (%s)", port,
                   exc, extra=logs.fields(port=port))
        return False
    _log.info("metrics served on port %s", port, extra=logs.fields(port=port))
    return True
