"""`make bench-overload`: this service offered far more `POST /begin` than it sustains.

Three runs (FULL.runs), each on a fresh stack (bench/stacks.py's Service: server, one worker,
gunicorn with 2 gevent workers, on free loopback ports); the table shows each run and their
median (lost and pending jobs: their sum), since one run's tail moves with the machine. A run:

  sustained  wrk, 8 connections (as `make bench`): the /begin rate the stack keeps up; the jobs
             it started are drained before the overload (up to DRAIN_SECONDS). Its begins
             outrun its jobs (the worker gives way to the gateway), so the table also gives
             the rate at which the stack finished them: begun / (wrk's seconds + the drain)
  overload   wrk, 64 connections, 30 s, a new id on every POST /begin (bench/wrk/jobs.lua in
             its by-status mode: every answer is matched to its request by X-Request-ID, which
             the gateway echoes, and timed by its status, so accepted and refused answers get
             latencies of their own); meanwhile a Python probe sends GET /healthz, GET /readyz
             and a POST /begin every 50 ms, each on its own keep-alive connection
  drain      every job a 202 accepted must settle: the stack is given up to DRAIN_SECONDS to
             finish the backlog; what is still pending then is counted, and lost = accepted
             (202) but not stored at all (neither settled nor pending)

  .venv/bin/python -m bench.overload              the measurement (2-3 minutes)
  .venv/bin/python -m bench.overload --runs 1     one run (about a minute)
  .venv/bin/python -m bench.overload --quick      tiny sizes (tests/test_overload.py)
  .venv/bin/python -m bench.overload --connections 256
                                                  a heavier overload (a closed loop offers
                                                  what its answers' latency allows)
  .venv/bin/python -m bench.overload --gateway-env ADMISSION_MAX_REQUESTS=0
                                                  the gateway with other settings
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import load, procs
from bench.report import across, grid
from bench.stacks import Service

PROBE_SECONDS = 0.05
PROBES = {"/healthz": ("GET", None), "/readyz": ("GET", None), "/begin": ("POST", load.JOB_BODY)}
REFUSED = ("503", "429")


@dataclass(frozen=True)
class Plan:
    sustained_seconds: float
    connections: int  # the overload's wrk connections
    seconds: float  # the overload's length
    drain_seconds: float
    runs: int  # each on a fresh stack
    gateway_env: dict[str, str] = field(default_factory=dict)


FULL = Plan(sustained_seconds=5, connections=64, seconds=30, drain_seconds=120, runs=3)
# A small admission limit, so that 16 connections meet refusals too.
QUICK = Plan(sustained_seconds=1, connections=16, seconds=2, drain_seconds=60, runs=1,
             gateway_env={"ADMISSION_MAX_REQUESTS": "2"})
SUSTAINED_CONNECTIONS = 8  # as `make bench`


def say(message: str) -> None:
    print(f"bench.overload: {message}", file=sys.stderr, flush=True)


@dataclass
class Probe:
    """One probe route's answers: (status, ms) each, and the /begin ids accepted."""

    answers: list[tuple[int, float]] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    retry_after: Counter[str] = field(default_factory=Counter)  # refusals by Retry-After

    def ms(self, percent: float) -> float:
        return load.percentile([ms for _, ms in self.answers], percent)


def probe(base_url: str, path: str, prefix: str, stop: threading.Event, result: Probe) -> None:
    """Sends `path` every PROBE_SECONDS until `stop`, timing each answer; a tick missed while an
    answer was awaited is skipped, not sent late."""
    method, body = PROBES[path]
    http, number, tick = load.Http(base_url), 0, time.monotonic()
    try:
        while not stop.is_set():
            number += 1
            job_id = f"{prefix}-{number}"
            target = f"{path}?id={job_id}" if method == "POST" else path
            started = time.perf_counter()
            try:
                status, _ = http.request(method, target, body)
            except OSError:
                status = 0  # no answer within the client's timeout
            result.answers.append((status, 1000 * (time.perf_counter() - started)))
            if method == "POST" and status == 202:
                result.accepted.append(job_id)
            if str(status) in REFUSED and http.headers is not None:
                result.retry_after[http.headers.get("Retry-After", "none")] += 1
            tick += PROBE_SECONDS
            while tick < time.monotonic():
                tick += PROBE_SECONDS
            stop.wait(tick - time.monotonic())
    finally:
        http.close()


@dataclass
class Overload:
    sustained: load.Run
    sustained_drain_seconds: float  # from the end of the sustained run until its jobs were done
    run: load.Run
    probes: dict[str, Probe]
    accepted: set[str]  # ids answered 202, wrk's and the probe's
    settled: set[str]  # ids of the jobs begun under overload that settled by the drain's end
    pending: set[str]  # and those still pending then (stored: they finish later)
    drain_seconds: float  # from the end of the overload until nothing was pending
    cpu: dict[str, tuple[float, int]]  # CPU seconds per process row over the overload

    @property
    def unsettled(self) -> set[str]:
        """Accepted, not settled by the drain's deadline."""
        return self.accepted - self.settled

    @property
    def lost(self) -> set[str]:
        """Accepted, and not stored at all."""
        return self.unsettled - self.pending


def overload(service: Service, plan: Plan, prefix: str) -> Overload:
    say(f"sustained: wrk, {SUSTAINED_CONNECTIONS} connections, {plan.sustained_seconds:g} s")
    sustained = load.wrk(service.url, "begin", "/begin", f"{prefix}-s", plan.sustained_seconds,
                         SUSTAINED_CONNECTIONS)
    ended = time.monotonic()
    left = service.drain(f"{prefix}-s", plan.drain_seconds)
    sustained_drain = time.monotonic() - ended
    say(f"sustained: {_accepted_per_second(sustained):.0f} begins/s accepted; drained in "
        f"{sustained_drain:.0f} s, {left} of its jobs left unfinished")

    say(f"overload: wrk, {plan.connections} connections, {plan.seconds:g} s, and the probes")
    stop = threading.Event()
    probes = {path: Probe() for path in PROBES}
    threads = [threading.Thread(target=probe, args=(service.url, path, f"{prefix}-p", stop,
                                                    probes[path]), daemon=True)
               for path in PROBES]
    for thread in threads:
        thread.start()
    before = procs.snapshot(service.roots())
    try:
        run = load.wrk(service.url, "begin", "/begin", f"{prefix}-o", plan.seconds,
                       plan.connections, by_status=True)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    cpu = procs.used(before, procs.snapshot(service.roots()))
    ended = time.monotonic()
    say(f"drain: up to {plan.drain_seconds:g} s for the backlog")
    service.drain(f"{prefix}-", plan.drain_seconds)
    drained = time.monotonic() - ended
    accepted = {job_id for _, job_id in run.by_status.get("202", [])}
    accepted.update(probes["/begin"].accepted)
    # Pending first: a job settling between the two reads is then seen in the second.
    pending, settled = ({job_id for state in states
                         for job_id in [*service.job_ids(f"{prefix}-o", state),
                                        *service.job_ids(f"{prefix}-p", state)]}
                        for states in (("pending",), ("resolved", "rejected")))
    return Overload(sustained, sustained_drain, run, probes, accepted, settled, pending,
                    drained, cpu)


def _accepted_per_second(run: load.Run) -> float:
    return run.per_second * run.good / max(run.requests, 1)


def _share(values: list[float], ms: float) -> float:
    return 100 * sum(value <= ms for value in values) / len(values) if values else math.nan


def _p(values: list[float], *percents: float) -> tuple[float, ...]:
    return tuple(load.percentile(values, percent) for percent in percents)


# A row's cell in one run: numbers with their format (shown "a / b"), or a text.
Cell = tuple[tuple[float, ...], str] | str
# Counted over the runs rather than their median: a job lost in any run must show.
SUMMED = frozenset({"accepted, still pending after the drain", "lost: accepted (202), not stored"})


def rows(result: Overload, plan: Plan) -> list[tuple[str, str, Cell]]:
    """One run's figures, as (metric, unit, cell)."""
    by_status, seconds = result.run.by_status, plan.seconds
    sustained = max(_accepted_per_second(result.sustained), 1e-9)
    finished = max(result.sustained.good
                   / (plan.sustained_seconds + result.sustained_drain_seconds), 1e-9)
    accepted = [ms for ms, _ in by_status.get("202", [])]
    refused = [ms for status in REFUSED for ms, _ in by_status.get(status, [])]
    answered = sum(len(values) for values in by_status.values())
    begins = result.probes["/begin"]
    gateway_cpu = result.cpu.get("gunicorn children", (0.0, 0))[0]
    return [
        ("sustained POST /begin (wrk, 8 connections)", "req/s", ((sustained,), ".0f")),
        ("sustained: answers not 2xx", "answers", ((result.sustained.bad,), ".0f")),
        ("sustained: its jobs finished, begun / (run + drain)", "jobs/s", ((finished,), ".0f")),
        (f"offered: answers/s to wrk's {plan.connections} connections", "req/s",
         ((answered / seconds,), ".0f")),
        ("offered / sustained; / its jobs finished per s", "x",
         ((answered / seconds / sustained, answered / seconds / finished), ".1f")),
        ("accepted begins (202)", "req/s", ((len(accepted) / seconds,), ".0f")),
        ("refused (503/429), of wrk's answers", "%",
         ((100 * len(refused) / max(answered, 1),), ".0f")),
        ("accepted p50 / p99", "ms", (_p(accepted, 50, 99), ".1f")),
        ("refused p50 / p99", "ms", (_p(refused, 50, 99), ".1f")),
        ("refused within 100 ms / accepted within 1 s", "%",
         ((_share(refused, 100), _share(accepted, 1000)), ".1f")),
        ("wrk status codes", "", " ".join(f"{status}: {len(values)}"
                                          for status, values in sorted(by_status.items()))),
        *[(f"probe {path} p50 / p99", "ms", (_p([ms for _, ms in probe.answers], 50, 99), ".1f"))
          for path, probe in result.probes.items()],
        *[(f"probe {path} status codes", "", " ".join(
            f"{status}: {count}" for status, count in sorted(Counter(
                status for status, _ in probe.answers).items())))
          for path, probe in result.probes.items()],
        ("probe refusals by Retry-After", "", " ".join(
            f"{value}: {count}" for value, count in sorted(begins.retry_after.items())) or "-"),
        ("jobs accepted (wrk + probe 202s)", "jobs", ((len(result.accepted),), ".0f")),
        ("jobs settled after the drain (all begun)", "jobs", ((len(result.settled),), ".0f")),
        ("drain after the overload", "s", ((result.drain_seconds,), ".0f")),
        ("accepted, still pending after the drain", "jobs", ((len(result.unsettled),), ".0f")),
        ("lost: accepted (202), not stored", "jobs", ((len(result.lost),), ".0f")),
        *[(f"CPU of {name} ({count}) during the overload", "% core",
           ((100 * cpu_seconds / seconds,), ".0f"))
          for name, (cpu_seconds, count) in result.cpu.items() if name != "gunicorn"],
        ("gateway CPU per answer to wrk (gunicorn children)", "ms",
         ((1000 * gateway_cpu / max(answered, 1),), ".2f")),
        ("wrk's own CPU (overload)", "% core", ((result.run.client_cpu,), ".0f")),
    ]


def _text(cell: Cell) -> str:
    if isinstance(cell, str):
        return cell
    values, spec = cell
    return " / ".join("-" if math.isnan(value) else format(value, spec) for value in values)


def _across(label: str, cells: list[Cell]) -> str:
    """The runs' median (per number of a cell), or their sum for SUMMED rows."""
    if any(isinstance(cell, str) for cell in cells):
        return ""
    numbers = zip(*(values for values, _ in cells), strict=True)  # the runs' k-th numbers
    return _text((tuple(across(list(each), label in SUMMED) for each in numbers), cells[0][1]))


def table(results: list[Overload], plan: Plan) -> str:
    """A column per run, then the median of the runs (lost and pending jobs: their sum)."""
    columns = [rows(result, plan) for result in results]
    several = len(results) > 1
    header = ["metric", "unit", *(f"run {n + 1}" for n in range(len(results)) if several),
              "median of runs" if several else "value"]
    lines = []
    for k, (label, unit, _) in enumerate(columns[0]):
        cells = [column[k][2] for column in columns]
        line = [label, unit, *(_text(cell) for cell in cells)]
        if several:
            line.append(_across(label, cells))
        lines.append(line)
    return grid(header, lines)


def main() -> None:
    procs.exit_on_sigterm()  # the finally's stop the stack
    parser = argparse.ArgumentParser(prog="python -m bench.overload",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for the tests)")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the gateway (repeatable)")
    parser.add_argument("--runs", type=int, help=f"runs, each on a fresh stack ({FULL.runs})")
    parser.add_argument("--connections", type=int,
                        help=f"wrk's connections in the overload ({FULL.connections})")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.runs:
        plan = replace(plan, runs=args.runs)
    if args.connections:
        plan = replace(plan, connections=args.connections)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: run `bench/ensure-tools` (apt-get install wrk)")
    gateway_env = {**plan.gateway_env,
                   **dict(item.split("=", 1) for item in args.gateway_env)}
    load_before, started = os.getloadavg()[0], time.monotonic()
    results = []
    for number in range(plan.runs):
        with tempfile.TemporaryDirectory(prefix="async-api-overload-") as tmp:
            service = Service(Path(tmp), gateway_env)
            say(f"run {number + 1} of {plan.runs}: starting this service")
            try:
                service.start()
                service.settled("warm")
                results.append(overload(service, plan, f"o{uuid.uuid4().hex[:8]}"))
            finally:
                service.stop()
    print(f"\n{os.cpu_count()} cores, load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; gateway env {gateway_env or 'default'}; "
          f"overload {plan.connections} connections x {plan.seconds:g} s, probes every "
          f"{1000 * PROBE_SECONDS:.0f} ms; {plan.runs} run(s), each on a fresh stack\n")
    print(table(results, plan))
    lost = sorted(job_id for result in results for job_id in result.lost)
    if lost:
        print(f"lost, for example: {', '.join(lost[:10])}")
    print(f"benchmark took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
