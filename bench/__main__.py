"""`make bench`: this service side by side with the raw Resonate server (the ceiling) and a
Flask + Celery + Redis peer with the same HTTP contract (bench/celery_peer), on this machine.
A fourth stack, the server with a worker sent a begin's creates straight (bench/stacks.py's
RawJobCreates), has the /begin run only: what a begin costs before any gateway.

Each stack is started on free loopback ports, measured, and stopped before the next one starts
(bench/stacks.py), so no stack's idle CPU weighs on another's numbers. That is one round. The
benchmark makes three (FULL.rounds), the stacks in turn in one round and the other way round
in the next, and prints for each figure its median over the rounds and for each ratio the
median of the rounds' ratios: this machine's speed drifts by a third over minutes, and a
single run of each stack put that drift into the ratios. In each round, for each stack:

  throughput   wrk, 8 connections, one thread: POST /begin with a unique id per request
               (raw server: POST /promises) and GET /wait on a settled id (raw: GET
               /promises/ID). The /begin run gets a fresh stack, and the jobs it started
               get up to 15 s to finish (what is left is counted), so its backlog cannot
               slow what follows.
  1 client     begin -> resolved, one job at a time, polling every 5 ms (p50/p95/p99); this
               service again with its long-poll (the status monitor with Prefer: wait=10):
               requests per job, and how long after the job settled the answer came
  burst        8 clients begin 500 jobs at once, then each polls its oldest unresolved job
               every 20 ms until all are resolved (jobs/s, p50/p99, polls per job, lost)
  CPU          utime + stime of every process of the stack, children included
               (/proc/<pid>/stat), per job over the burst and over the /begin runs
  idle         (first round) the whole stack's CPU over 10 s with nothing to do: once
               freshly started (one job run), once after the burst and GET runs (a backlog
               it could not finish shows there)

The load generators' own CPU is printed too: a client that used a whole core was the limit.

  .venv/bin/python -m bench            the whole comparison (wrk, redis-server, bench/.venv-peer;
                                       `make bench` installs them), about 3 minutes
  .venv/bin/python -m bench --rounds 1 one round (under 2 minutes; its ratios carry the drift)
  .venv/bin/python -m bench --quick    this service only, tiny sizes, Python clients only
                                       (tests/test_bench.py runs it so the benchmark never rots)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bench import load, procs
from bench.report import Result, client_table, main_table, process_table
from bench.stacks import CeleryPeer, RawJobCreates, RawServer, Service

ONE_CLIENT_POLL_SECONDS = 0.005
BURST_POLL_SECONDS = 0.02
BURST_CLIENTS = 8
CONNECTIONS = 8  # as many as the 2 x 4 gunicorn threads of either web side
JOB_TIMEOUT_SECONDS = 60  # a job not resolved by then counts as lost (1 client: all of them)
DRAIN_SECONDS = 15  # after each /begin run; what is left then is counted as unfinished


@dataclass(frozen=True)
class Plan:
    stacks: dict[str, type]
    load: Callable[..., load.Run]
    rounds: int
    seconds: float  # one throughput run
    latency_jobs: int
    burst_jobs: int
    idle_seconds: float


FULL = Plan(stacks={"raw": RawServer, "rawjobs": RawJobCreates, "service": Service,
                    "peer": CeleryPeer}, load=load.wrk,
            rounds=3, seconds=3, latency_jobs=100, burst_jobs=500, idle_seconds=10)
QUICK = Plan(stacks={"service": Service}, load=load.python_load,
             rounds=1, seconds=1, latency_jobs=10, burst_jobs=40, idle_seconds=2)


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def started(kind: type, directory: Path) -> Iterator[RawServer | Service | CeleryPeer]:
    directory.mkdir(parents=True)
    stack = kind(directory)
    try:
        stack.start()
        yield stack
    except Exception:
        for process in stack.processes():  # what went wrong, before the temp dir goes
            say(f"last lines of {process.name}'s log:\n" + "\n".join(
                process.log().splitlines()[-20:]))
        raise
    finally:
        stack.stop()


def cpu_over(roots: dict[str, int], seconds: float) -> dict[str, tuple[float, int]]:
    """What the stack uses while nobody sends it anything."""
    time.sleep(1)
    before = procs.snapshot(roots)
    time.sleep(seconds)
    return procs.used(before, procs.snapshot(roots))


def measure(stack: RawServer | Service | CeleryPeer, plan: Plan, prefix: str,
            result: Result, idle: bool) -> None:
    """Every scenario but the /begin run, on one started stack; `idle`: CPU after the load too."""
    roots = stack.roots()
    wait_path = stack.settled(f"{prefix}-settled")
    if stack.jobs:
        say(f"{stack.title}: 1 client, {plan.latency_jobs} jobs")
        result.latency = load.one_client(stack.url, f"{prefix}-one", plan.latency_jobs,
                                         ONE_CLIENT_POLL_SECONDS, JOB_TIMEOUT_SECONDS)
        if stack.long_poll:
            say(f"{stack.title}: 1 client, {plan.latency_jobs} jobs, long-poll")
            result.long_polls = load.long_poll_client(stack.url, f"{prefix}-lp",
                                                      plan.latency_jobs, JOB_TIMEOUT_SECONDS)
        say(f"{stack.title}: burst of {plan.burst_jobs} jobs from {BURST_CLIENTS} clients")
        before = procs.snapshot(roots)
        result.burst = load.burst(stack.url, f"{prefix}-burst", plan.burst_jobs, BURST_CLIENTS,
                                  BURST_POLL_SECONDS, JOB_TIMEOUT_SECONDS)
        result.burst_cpu = procs.used(before, procs.snapshot(roots))
    say(f"{stack.title}: GET")
    result.wait.append(plan.load(stack.url, "get", wait_path, "", plan.seconds, CONNECTIONS))
    if idle:
        say(f"{stack.title}: no requests for {plan.idle_seconds:g} s, after the load")
        result.after_load_cpu = cpu_over(roots, plan.idle_seconds)
        result.idle_seconds = plan.idle_seconds


def begin_run(stack: RawServer | Service | CeleryPeer, plan: Plan, prefix: str,
              result: Result, idle: bool) -> None:
    """One /begin run on a fresh stack, then (for jobs) the drain of what it started; `idle`:
    the fresh stack is measured idle first."""
    stack.settled(f"{prefix}-warm")
    mode, path = stack.begin
    roots = stack.roots()
    if idle:
        say(f"{stack.title}: idle for {plan.idle_seconds:g} s")
        result.idle_cpu = cpu_over(roots, plan.idle_seconds)
    before, started_at = procs.snapshot(roots), time.monotonic()
    run = plan.load(stack.url, mode, path, prefix, plan.seconds, CONNECTIONS)
    # Up to CONNECTIONS requests cut off at the end may have started jobs too.
    accepted = run.good
    if stack.jobs:
        left = stack.drain(prefix, DRAIN_SECONDS)
        result.begin_unfinished += left
        result.done_per_second.append(max(0, accepted - left) / (time.monotonic() - started_at))
    for name, (seconds, count) in procs.used(before, procs.snapshot(roots)).items():
        result.begin_cpu[name] = (result.begin_cpu.get(name, (0.0, 0))[0] + seconds, count)
    result.begin_jobs += accepted
    result.begin.append(run)


def run(plan: Plan) -> dict[str, list[Result]]:
    """Rounds of every stack in turn (the order reversed every other round): one instance for
    most scenarios, then a fresh one for the /begin run, so its backlog cannot slow the rest."""
    results: dict[str, list[Result]] = {key: [] for key in plan.stacks}
    prefix = f"b{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="async-api-bench-") as tmp:
        for number in range(plan.rounds):
            keys = list(plan.stacks) if number % 2 == 0 else list(reversed(plan.stacks))
            for key in keys:
                kind, name = plan.stacks[key], f"{key}-{number}"
                result = Result(kind.title)
                results[key].append(result)
                first = number == 0 and not kind.begin_only
                if not kind.begin_only:
                    say(f"round {number + 1} of {plan.rounds}, {kind.title}: starting")
                    with started(kind, Path(tmp) / name) as stack:
                        measure(stack, plan, f"{prefix}{name}", result, idle=first)
                say(f"{kind.title}: POST run on a fresh stack"
                    + (f", then up to {DRAIN_SECONDS} s of drain" if kind.jobs else ""))
                with started(kind, Path(tmp) / f"{name}-begin") as stack:
                    begin_run(stack, plan, f"{prefix}{name}-begin", result, idle=first)
    return results


def main() -> None:
    # On SIGTERM, as on Ctrl-C, the `finally`s still stop every process the benchmark started.
    procs.exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="this service only, tiny sizes, Python clients (for the tests)")
    parser.add_argument("--rounds", type=int, help=f"rounds of every stack ({FULL.rounds})")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.rounds:
        plan = replace(plan, rounds=args.rounds)
    if plan.load is load.wrk and not shutil.which("wrk"):
        raise SystemExit("wrk is missing: run `make bench` (it installs wrk and redis-server)")
    load_before, started = os.getloadavg()[0], time.monotonic()
    results = run(plan)
    clients, saturated = client_table(results)
    print(f"\n{os.cpu_count()} cores, load average {load_before:.2f} before the run, "
          f"{os.getloadavg()[0]:.2f} after (other processes of the machine count too); "
          f"{plan.rounds} round(s), the stacks' order reversed every other round: a figure "
          f"is the median of the rounds', a ratio the median of the rounds' ratios; "
          f"throughput: one run of {plan.seconds:g} s per stack and round, "
          f"{CONNECTIONS} connections; burst {plan.burst_jobs} jobs x {BURST_CLIENTS} clients; "
          f"a job not resolved {JOB_TIMEOUT_SECONDS} s after its begin is lost; "
          f"idle over {plan.idle_seconds:g} s.\n")
    print(main_table(results))
    print("\nCPU per process (children: gunicorn's workers, Celery's pool; count in brackets)\n")
    print(process_table(results))
    print("\nLoad generators (one wrk thread or Python threads under one GIL: "
          f"{load.SATURATED_PERCENT:.0f} % of a core means the client was the limit)\n")
    print(clients)
    print("\nclient saturated a core in: " + "; ".join(saturated) if saturated else
          "\nno client saturated a core.")
    print(f"benchmark took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
