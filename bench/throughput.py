"""Benchmark: what the gateway costs on top of the raw Resonate server, on this machine.

Starts its own server, worker and gateway on free ports (tests/support/stack.py), then runs, in one
invocation, with the same client threads:

  baseline    promise create + get straight on the server (what any client pays)
  gateway     POST /begin + GET /wait through gunicorn (the gateway's overhead)
  end-to-end  POST /begin, then poll /wait until resolved (a worker really runs foo)

and prints a table with each row's ratio to the baseline. Usage:
  .venv/bin/python -m bench.throughput [--requests 400] [--threads 8]
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.support.stack import Stack


def measure(pairs: int, threads: int, one: Callable[[requests.Session, int], None]) -> dict:
    """Runs `one` `pairs` times over `threads` threads; each thread keeps its own session."""
    sessions = [requests.Session() for _ in range(threads)]
    latencies: list[float] = []

    def timed(index: int) -> None:
        started = time.perf_counter()
        one(sessions[index % threads], index)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(timed, range(pairs)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"per_second": pairs / elapsed, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def main() -> None:
    # SIGTERM (e.g. a timeout) must still run the `finally` below that stops the processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]

    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        try:
            stack.start(["worker"], gateway_env={"WEB_CONCURRENCY": "4"})
            server, gateway = stack.engine.url, stack.gateway_url
            data = base64.b64encode(json.dumps({"func": "none"}).encode()).decode()

            def raw_pair(session: requests.Session, index: int) -> None:
                promise_id = f"bench-raw-{run}-{index}"
                session.post(f"{server}/promises", json={
                    "id": promise_id, "param": {"data": data},
                    "timeout": int(time.time() * 1000) + 60_000}).raise_for_status()
                session.get(f"{server}/promises/{promise_id}").raise_for_status()

            def gateway_pair(session: requests.Session, index: int) -> None:
                job_id = f"bench-gw-{run}-{index}"
                session.post(f"{gateway}/begin", params={"id": job_id},
                             json={"n": index}).raise_for_status()
                session.get(f"{gateway}/wait", params={"id": job_id}).raise_for_status()

            def end_to_end(session: requests.Session, index: int) -> None:
                job_id = f"bench-e2e-{run}-{index}"
                session.post(f"{gateway}/begin", params={"id": job_id},
                             json={"n": index}).raise_for_status()
                while session.get(f"{gateway}/wait", params={"id": job_id}).json()[
                        "status"] == "pending":
                    time.sleep(0.05)

            rows = {
                "baseline: server create+get": measure(args.requests, args.threads, raw_pair),
                "gateway: /begin + /wait": measure(args.requests, args.threads, gateway_pair),
                "end-to-end: begin, poll to done": measure(args.requests // 2, args.threads,
                                                           end_to_end),
            }
        finally:
            stack.stop()

    baseline = rows["baseline: server create+get"]["per_second"]
    print(f"\n{args.requests} pairs, {args.threads} client threads, sqlite store, "
          "gunicorn with 4 workers, 1 worker process\n")
    print(f"{'run':34} {'pairs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>12}")
    for name, row in rows.items():
        print(f"{name:34} {row['per_second']:9.0f} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} "
              f"{row['per_second'] / baseline:11.2f}x")


if __name__ == "__main__":
    main()
