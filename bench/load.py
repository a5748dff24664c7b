"""The clients: wrk for throughput, small Python clients for latency and bursts.

Every loop here has a deadline. Each measurement also reports the client's own CPU (as a
percentage of one core), so the table can say when the client, not the server, was the limit.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from async_api import contract
from async_api.engine import TRACEPARENT_TAG, job_tags

WRK_SCRIPT = Path(__file__).with_name("wrk") / "jobs.lua"
JOB_BODY = {"foo": "bar"}
# What the gateway stores for a /begin job; the raw create rows store the same bytes.
PROMISE_DATA = base64.b64encode(
    json.dumps({"func": "foo", "args": [JOB_BODY], "kwargs": {}}).encode()).decode()
# The tags of a raw create, by wrk mode: "create" none, "createjob" those of a begin's promise
# (a job of `foo`, with a trace context), so that the server makes its task and the worker runs it.
CREATE_TAGS = {"create": {}, "createjob": {
    **job_tags(contract.FOO.group),
    TRACEPARENT_TAG: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
# A client thread at or above this share of a core was probably the limit (one wrk thread, or
# Python threads under one GIL).
SATURATED_PERCENT = 90.0


def percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def expiry_ms() -> int:
    """A promise timeout far beyond the benchmark (one hour from now)."""
    return int(time.time() * 1000) + 3_600_000


def promise_create(promise_id: str, mode: str = "create") -> dict[str, Any]:
    """The body of a raw create in `mode` (CREATE_TAGS), as bench/wrk/jobs.lua sends it."""
    return {"id": promise_id, "timeout": expiry_ms(),
            "param": {"headers": {}, "data": PROMISE_DATA}, "tags": CREATE_TAGS[mode]}


class Http:
    """One keep-alive HTTP/1.1 connection (http.client costs the client far less CPU than
    requests). A request that fails on a dropped connection is sent once more on a new one:
    every request the benchmark sends is safe to repeat (a begin repeats with the same id)."""

    def __init__(self, base_url: str, timeout: float = 10) -> None:
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.headers: http.client.HTTPMessage | None = None  # of the last answer

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body)
        headers = {**({"Content-Type": "application/json"} if payload else {}), **(headers or {})}
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=payload, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                self.headers = response.headers
                return response.status, json.loads(data) if data else None
            except (OSError, http.client.HTTPException, json.JSONDecodeError):
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def begin(self, job_id: str) -> int:
        return self.request("POST", f"/begin?id={job_id}", JOB_BODY)[0]

    def status(self, job_id: str) -> str:
        """"pending", "resolved", "rejected", ... or "http <status>" for an error answer."""
        code, answer = self.request("GET", f"/wait?id={job_id}")
        return answer["status"] if code == 200 else f"http {code}"

    def close(self) -> None:
        self.connection.close()


@dataclass
class Run:
    """One throughput run of a load generator."""

    per_second: float
    requests: int
    bad: int  # non-2xx answers and socket errors
    client_cpu: float  # % of one core
    client: str
    # (ms, id) per answer, by HTTP status ("unmatched": an answer without the request's id);
    # only from wrk(..., by_status=True)
    by_status: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    @property
    def good(self) -> int:
        """2xx answers."""
        return self.requests - self.bad

    @property
    def saturated(self) -> bool:
        return self.client_cpu >= SATURATED_PERCENT


def wrk(base_url: str, mode: str, path: str, prefix: str, seconds: float,
        connections: int, by_status: bool = False) -> Run:
    """wrk with one thread and `connections` connections for `seconds` (bench/wrk/jobs.lua);
    `by_status` also times every answer by its status (begin mode; see the script).

    The client CPU is wrk's own utime + stime, as the kernel hands it to its parent on exit
    (the same counters as /proc/<pid>/stat)."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
            "-s", str(WRK_SCRIPT), f"{base_url}{path}", "--",
            "create" if mode in CREATE_TAGS else mode, prefix, str(expiry_ms()), PROMISE_DATA,
            json.dumps(CREATE_TAGS.get(mode, {})), *(["by-status"] if by_status else [])]
    # A file, not a pipe: nobody reads while wrk runs, and by-status prints a line per answer.
    with tempfile.TemporaryFile(mode="w+") as output_file:
        process = subprocess.Popen(args, stdout=output_file, stderr=subprocess.STDOUT, text=True)
        started = time.monotonic()
        deadline = started + seconds + 30
        reaped: tuple[int, int, Any] = (0, 0, None)
        try:
            while not (reaped := os.wait4(process.pid, os.WNOHANG))[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"wrk did not stop: {args}")
                time.sleep(0.05)
        finally:
            if not reaped[0]:  # interrupted (SIGTERM, deadline): wrk must not outlive us
                process.kill()
                process.wait()
        _, exit_status, usage = reaped
        process.returncode = os.waitstatus_to_exitcode(exit_status)
        wall = time.monotonic() - started
        output_file.seek(0)
        output = output_file.read()
    lines = [line for line in output.splitlines() if line.startswith("BENCH ")]
    if process.returncode or not lines:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output}")
    summary = json.loads(lines[-1].removeprefix("BENCH "))
    by_status: dict[str, list[tuple[float, str]]] = {}
    for line in output.splitlines():
        if line.startswith("ANSWER "):
            _, status, ms, job_id = line.split(" ", 3)
            by_status.setdefault(status, []).append((float(ms), job_id))
    return Run(per_second=summary["requests"] / (summary["duration_us"] / 1e6),
               requests=summary["requests"],
               bad=summary["bad_status"] + summary["socket_errors"],
               client_cpu=100 * (usage.ru_utime + usage.ru_stime) / wall, client="wrk",
               by_status=by_status)


def python_load(base_url: str, mode: str, path: str, prefix: str, seconds: float,
                connections: int) -> Run:
    """The same requests as wrk, from `connections` Python threads (the quick mode's client:
    it needs nothing installed, and is too slow to measure a server's ceiling)."""
    counts = [[0, 0] for _ in range(connections)]  # [answered, bad] per thread
    stop_at = time.monotonic() + seconds

    def client(number: int) -> None:
        http = Http(base_url)
        try:
            while time.monotonic() < stop_at:
                job_id = f"{prefix}-{number}-{counts[number][0] + 1}"
                if mode == "begin":
                    code, _ = http.request("POST", f"{path}?id={job_id}", JOB_BODY)
                elif mode in CREATE_TAGS:
                    code, _ = http.request("POST", path, promise_create(job_id, mode),
                                           {"Idempotency-Key": job_id, "Strict": "false"})
                else:
                    code, _ = http.request("GET", path)
                counts[number][0] += 1
                counts[number][1] += not 200 <= code < 300
        finally:
            http.close()

    cpu, started = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=client, args=(n,), daemon=True)
               for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    wall = time.monotonic() - started
    answered = sum(answered for answered, _ in counts)
    return Run(per_second=answered / wall, requests=answered,
               bad=sum(bad for _, bad in counts),
               client_cpu=100 * (time.process_time() - cpu) / wall, client="python")


@dataclass
class Jobs:
    """Jobs begun and polled until they settled: latencies (s) of the resolved ones."""

    jobs: int
    latencies: list[float]
    polls: int
    elapsed: float  # from the first begin to the last job seen resolved
    client_cpu: float  # % of one core

    @property
    def lost(self) -> int:
        """Jobs not seen resolved: refused, rejected, or still pending at the deadline."""
        return self.jobs - len(self.latencies)

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else math.nan


def _measured(jobs: int, run: Callable[[], tuple[list[float], int, float]]) -> Jobs:
    """Runs a client, adding its CPU: (latencies, polls, elapsed) -> Jobs."""
    cpu, started = time.process_time(), time.monotonic()
    latencies, polls, elapsed = run()
    wall = time.monotonic() - started
    return Jobs(jobs, latencies, polls, elapsed, 100 * (time.process_time() - cpu) / wall)


def _one_at_a_time(base_url: str, prefix: str, jobs: int, timeout: float,
                   wait: Callable[[Http, str, float], tuple[bool, int]],
                   http_timeout: float = 10) -> Jobs:
    """One client, one job at a time: begin, then `wait(http, job_id, deadline)` until the
    job settles, which says whether it resolved and how many requests that took; the jobs not
    resolved within `timeout` s in all are lost."""
    def run() -> tuple[list[float], int, float]:
        http, latencies, polls = Http(base_url, timeout=http_timeout), [], 0
        started = time.perf_counter()
        deadline = started + timeout
        try:
            for number in range(jobs):
                job_id = f"{prefix}-{number}"
                begun = time.perf_counter()
                if begun > deadline or http.begin(job_id) != 202:
                    continue
                resolved, asked = wait(http, job_id, deadline)
                polls += asked
                if resolved:
                    latencies.append(time.perf_counter() - begun)
        finally:
            http.close()
        return latencies, polls, time.perf_counter() - started
    return _measured(jobs, run)


def one_client(base_url: str, prefix: str, jobs: int, poll_seconds: float,
               timeout: float) -> Jobs:
    """One client, one job at a time: begin, then poll every `poll_seconds` until settled."""
    def poll(http: Http, job_id: str, deadline: float) -> tuple[bool, int]:
        state, polls = "pending", 0
        while state == "pending" and time.perf_counter() < deadline:
            time.sleep(poll_seconds)
            state = http.status(job_id)
            polls += 1
        return state == "resolved", polls
    return _one_at_a_time(base_url, prefix, jobs, timeout, poll)


@dataclass
class LongPolls:
    """One client's jobs waited for with the long-poll: requests per job (the begin counted)
    and how long after the server settled a job its answer reached the client (s)."""

    jobs: Jobs
    requests: int
    after_settle: list[float]


def long_poll_client(base_url: str, prefix: str, jobs: int, timeout: float) -> LongPolls:
    """One client, one job at a time: begin, then GET the job's status monitor with
    `Prefer: wait=10` until it is not Running (README, Long-poll)."""
    after_settle: list[float] = []
    requests = 0

    def hold(http: Http, job_id: str, deadline: float) -> tuple[bool, int]:
        nonlocal requests
        answer: dict[str, Any] = {"status": "Running"}
        polls = 0
        while answer["status"] == "Running" and time.perf_counter() < deadline:
            _, answer = http.request("GET", f"/jobs/{job_id}/operation",
                                     headers={"Prefer": "wait=10"})
            polls += 1
        requests += 1 + polls  # its begin, then its waits
        if answer["status"] != "Succeeded":
            return False, polls
        settled = datetime.fromisoformat(answer["lastUpdatedDateTime"])
        after_settle.append(time.time() - settled.timestamp())
        return True, polls
    measured = _one_at_a_time(base_url, prefix, jobs, timeout, hold, http_timeout=30)
    return LongPolls(measured, requests, after_settle)


def burst(base_url: str, prefix: str, jobs: int, clients: int, poll_seconds: float,
          timeout: float) -> Jobs:
    """`clients` clients begin `jobs` jobs between them at once, then each waits for its own
    in the order it began them, polling the oldest unsettled one every `poll_seconds`."""
    results: list[tuple[list[float], int, float]] = []  # per client: latencies, polls, last
    start = threading.Barrier(clients)

    def client(number: int) -> None:
        http, latencies, polls, last = Http(base_url), [], 0, 0.0
        try:
            start.wait(30)
            begun: deque[tuple[str, float]] = deque()
            for job_id in (f"{prefix}-{n}" for n in range(number, jobs, clients)):
                at = time.perf_counter()
                if http.begin(job_id) == 202:
                    begun.append((job_id, at))
            deadline = time.perf_counter() + timeout
            while begun and time.perf_counter() < deadline:
                job_id, at = begun[0]
                state = http.status(job_id)
                polls += 1
                if state == "pending":
                    time.sleep(poll_seconds)
                    continue
                begun.popleft()
                if state == "resolved":
                    last = time.perf_counter()
                    latencies.append(last - at)
        finally:
            http.close()
            results.append((latencies, polls, last))

    def run() -> tuple[list[float], int, float]:
        threads = [threading.Thread(target=client, args=(n,), daemon=True)
                   for n in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout + 60)
        last = max((result[2] for result in results), default=started)
        return ([value for result in results for value in result[0]],
                sum(result[1] for result in results), max(0.0, last - started))
    return _measured(jobs, run)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan
