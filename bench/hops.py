"""Benchmark: what the Resonate server's tick costs when idle and what it adds to each hop.

For each configuration (a server binary and its --system-signal-timeout) it starts a real stack
(tests/support/stack.py: server on sqlite, one worker for each of the groups worker, business and
db, one gunicorn gateway), warms it up, then measures in that one run:

  idle CPU      from /proc (bench/procs.py) over --idle seconds, of the server alone and of the
                whole stack (server, the three workers, gunicorn master and workers), in % of
                one core
  fresh job     POST /begin -> a worker runs foo -> job resolved (one client)
  sleep hop     POST /begin {"sleep": 1} -> resolved, minus the 1 s sleep (so: a fresh job plus
                the durable sleep's wake-up)
  await chain   POST /await-chain -> resolved: place_order (group business) calls query_orders
                (group db) and resumes on its answer (two dispatches and one resume hop)
  approval      POST /orders/ID/approve-and-ship; once the workflow is suspended on its approval
                promise (callback registered, task completed), POST /webhooks/approval/ID
                {"approved": true} -> resolved (one resume hop)

The configurations are measured in turn, --rounds times over (so that a change in the load of
the machine, which is shared, touches every row alike); each round takes each latency --reps
times, one at a time. The table shows p50/p95 in ms over all rounds' samples, and the median of
the rounds' idle CPU. "Resolved" is seen by polling the server's GET /promises/ID every 5 ms, so
each latency carries up to 5 ms of polling (the same in every row). The approval row waits for
the suspension by reading the server's sqlite file (read-only), before its clock starts.

Configurations are BINARY:TICK, BINARY being "upstream" (v0.7.0 as published, built on demand to
.resonate/bin/resonate-upstream) or "patched" (.resonate/bin/resonate, with
scripts/resonate-patches/). Usage:
  .venv/bin/python -m bench.hops [--rounds 2] [--reps 10] [--idle 10]
      [--configs upstream:10ms,upstream:100ms,upstream:1s,patched:1s]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import requests

from bench import procs
from tests.support.processes import ROOT, wait_until
from tests.support.stack import Stack

BINARIES = {"upstream": ROOT / ".resonate/bin/resonate-upstream",
            "patched": ROOT / ".resonate/bin/resonate"}
DEFAULT_CONFIGS = "upstream:10ms,upstream:100ms,upstream:1s,patched:1s"
GROUPS = ["worker", "business", "db"]
POLL_SECONDS = 0.005
SLEEP_SECONDS = 1


def ensure_binary(kind: str) -> Path:
    """Builds the binary if it is missing or stale (build-resonate skips it otherwise)."""
    env = {name: value for name, value in os.environ.items() if name != "RESONATE_UNPATCHED"}
    if kind == "upstream":
        env["RESONATE_UNPATCHED"] = "1"
    subprocess.run([str(ROOT / "scripts/build-resonate"), str(BINARIES[kind])], cwd=ROOT,
                   env=env, check=True)
    return BINARIES[kind]


def idle_cpu(stack: Stack, seconds: float) -> tuple[float, float]:
    """% of one core used by the server alone, and by the whole stack, while nothing happens."""
    roots = {"server": stack.engine.pid} | {
        f"process {process.pid}": process.pid for process in stack.workers + stack.gateways}
    before = procs.snapshot(roots)
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    used = procs.used(before, procs.snapshot(roots))
    everything = sum(cpu for cpu, _ in used.values())
    return 100 * used["server"][0] / elapsed, 100 * everything / elapsed


class Hops:
    """The four measurements against one started stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.gateway = requests.Session()
        self.engine = requests.Session()
        self.run = uuid.uuid4().hex[:8]
        self.count = 0

    def new_id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}-{self.run}-{self.count}"

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        response = self.gateway.post(f"{self.stack.gateway_url}{path}", json=body, timeout=10)
        assert response.status_code in (200, 202), (path, response.status_code, response.text)
        return response

    def resolved(self, promise_id: str, timeout: float = 60) -> float:
        """Polls the server until the promise is resolved; returns the time it was seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.engine.get(f"{self.stack.engine_url}/promises/{promise_id}", timeout=5)
            if answer.ok:
                state = answer.json()["state"]
                if state == "RESOLVED":
                    return time.perf_counter()
                assert state == "PENDING", (promise_id, state)
            time.sleep(POLL_SECONDS)
        raise AssertionError(f"{promise_id} not resolved in {timeout}s")

    def fresh_job(self) -> float:
        job_id = self.new_id("fresh")
        started = time.perf_counter()
        self.post(f"/begin?id={job_id}", {"n": self.count})
        return self.resolved(job_id) - started

    def sleep_hop(self) -> float:
        job_id = self.new_id("sleep")
        started = time.perf_counter()
        self.post(f"/begin?id={job_id}", {"sleep": SLEEP_SECONDS, "n": self.count})
        return self.resolved(job_id) - started - SLEEP_SECONDS

    def await_chain(self) -> float:
        job_id = self.new_id("chain")
        started = time.perf_counter()
        self.post(f"/await-chain?id={job_id}", {"customer": f"c{self.count}", "item": "pen"})
        return self.resolved(job_id) - started

    def approval(self) -> float:
        order_id = self.new_id("A")
        self.post(f"/orders/{order_id}/approve-and-ship")
        wait_until(lambda: self.suspended(f"order:{order_id}", f"approval:{order_id}"), 60,
                   "the order to wait for its approval", interval=0.01)
        started = time.perf_counter()
        self.post(f"/webhooks/approval/{order_id}", {"approved": True})
        return self.resolved(f"order:{order_id}") - started

    def suspended(self, job_id: str, awaited_id: str) -> bool:
        """The job's workflow awaits `awaited_id` (its callback is there) and holds no task."""
        with sqlite3.connect(f"file:{self.stack.sqlite_path}?mode=ro", uri=True,
                             timeout=5) as db:
            callbacks = db.execute("SELECT count(*) FROM callbacks WHERE promise_id = ?",
                                   (awaited_id,)).fetchone()[0]
            open_tasks = db.execute(
                "SELECT count(*) FROM tasks WHERE root_promise_id = ? AND state NOT IN (8, 16)",
                (job_id,)).fetchone()[0]
        return callbacks > 0 and open_tasks == 0


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def measure(config: str, reps: int, idle_seconds: float) -> dict:
    """One round of one configuration: idle CPU, then each latency `reps` times."""
    kind, tick = config.split(":")
    binary = ensure_binary(kind)
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), {"RESONATE_BIN": str(binary), "RESONATE_SIGNAL_TIMEOUT": tick})
        try:
            stack.start(GROUPS)
            hops = Hops(stack)
            kinds: dict[str, Callable[[], float]] = {
                "fresh job": hops.fresh_job, "sleep hop": hops.sleep_hop,
                "await chain": hops.await_chain, "approval": hops.approval}
            for one in kinds.values():  # warm-up: connections, imports, sqlite pages
                one()
            time.sleep(3)  # let claims and heartbeats of the warm-up settle
            row: dict = {}
            row["idle server"], row["idle stack"] = idle_cpu(stack, idle_seconds)
            for name, one in kinds.items():
                row[name] = [one() for _ in range(reps)]
            return row
        finally:
            stack.stop()


def main() -> None:
    # SIGTERM (e.g. a timeout) must still run the `finally` that stops the processes.
    procs.exit_on_sigterm(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reps", type=int, default=10, help="samples of each latency per round")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle measurement")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS)
    args = parser.parse_args()

    configs = args.configs.split(",")
    rounds: dict[str, list[dict]] = {config: [] for config in configs}
    for round_number in range(1, args.rounds + 1):
        for config in configs:
            print(f"round {round_number}/{args.rounds}: {config} ...", file=sys.stderr, flush=True)
            rounds[config].append(measure(config, args.reps, args.idle))

    latencies = ["fresh job", "sleep hop", "await chain", "approval"]
    header = (f"{'config':<16} {'idle server':>11} {'idle stack':>10} "
              + " ".join(f"{name + ' p50/p95':>20}" for name in latencies))
    print(f"\nidle CPU in % of one core over {args.idle:g} s (median of {args.rounds} rounds); "
          f"latencies in ms, {args.rounds} x {args.reps} each, one at a time")
    print(header)
    print("-" * len(header))
    for config, measured in rounds.items():
        idle = [statistics.median(m[part] for m in measured)
                for part in ("idle server", "idle stack")]
        cells = []
        for name in latencies:
            p50, p95 = percentiles([sample for m in measured for sample in m[name]])
            cells.append(f"{f'{p50:.0f} / {p95:.0f}':>20}")
        print(f"{config:<16} {idle[0]:>10.1f}% {idle[1]:>9.1f}% {' '.join(cells)}")


if __name__ == "__main__":
    main()
