"""`make bench-ceiling`: how near `POST /begin` can come to the raw server's creates, and what
the issue's 60 % of them would take of this machine's cores (PERFORMANCE.md, "Why `/begin`
stays far from the raw server").

Each row gets a fresh stack, measured once it has finished starting, with wrk (one thread,
8 connections, 3 s) as `make bench` measures `/begin`; the rows take turns, in the other order
every other round, and each figure is the median of the rounds':

  raw server        POST /promises on the server as this project runs it (make bench's raw row)
  raw job creates   POST /promises of what a begin creates (a promise that starts a `foo` job),
                    straight to the server, its worker running the jobs as they come: a begin's
                    work without the gateway (make bench's "raw server, job creates")
  published server  POST /promises on the Resonate server v0.7.0 as published, on its default
                    sqlite settings (rollback journal) and 10 ms tick (built on demand to
                    .resonate/bin/resonate-upstream, as bench/hops.py does)
  gunicorn floor    POST /begin on bench/floor_app.py, an app that answers a constant, under
                    gunicorn.conf.py (2 gevent workers): what any gateway pays a request
  this service      POST /begin, its worker running the jobs as they come

CPU per request is the whole stack's (/proc, children included); the gateway's is its gunicorn
processes'. Usage:
  .venv/bin/python -m bench.ceiling [--rounds 3]
  .venv/bin/python -m bench.ceiling --quick   one round of 1 s, Python clients, no published
                                              server (tests/test_bench.py)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench import load, procs
from bench.hops import ensure_binary
from bench.report import across, grid
from bench.stacks import WEB_ENV, RawJobCreates, RawServer, Service
from tests.support.processes import BIN, Process, free_port, wait_until

CONNECTIONS = 8  # as `make bench`
TARGET_SHARE = 0.6  # of the raw server's creates (the target for /begin)


class OneProcess:
    """A row's stack that is one process, children included, answering on `url`."""

    title = ""
    begin = ("", "")  # wrk mode, path

    def __init__(self, process: Process, url: str) -> None:
        self.process, self.url = process, url

    def answers(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        self.process.start()
        wait_until(self.answers, 30, f"the {self.title} to answer")
        procs.wait_quiet(self.roots())

    def roots(self) -> dict[str, int]:
        return {self.process.name: self.process.pid}

    def stop(self) -> None:
        self.process.stop()


class PublishedServer(OneProcess):
    """The Resonate server v0.7.0 as published, on its default settings."""

    title = "published server"
    begin = ("create", "/promises")

    def __init__(self, tmp: Path) -> None:
        http_port = free_port()
        super().__init__(Process("resonate server", [
            str(ensure_binary("upstream")), "serve", "--log-level", "warn",
            "--api-http-addr", f"127.0.0.1:{http_port}",
            "--aio-sender-plugin-poll-addr", f"127.0.0.1:{free_port()}",
            "--api-grpc-addr", f"127.0.0.1:{free_port()}",
            "--metrics-addr", f"127.0.0.1:{free_port()}",
            "--aio-store-sqlite-path", str(tmp / "resonate.db")], {}, tmp),
            f"http://127.0.0.1:{http_port}")

    def answers(self) -> bool:
        return requests.get(f"{self.url}/promises", params={"id": "*"}, timeout=1).ok


class GunicornFloor(OneProcess):
    """bench/floor_app.py under the gateway's gunicorn.conf.py."""

    title = "gunicorn floor"
    begin = ("begin", "/begin")

    def __init__(self, tmp: Path) -> None:
        port = free_port()
        super().__init__(Process("gunicorn", [
            str(BIN / "gunicorn"), "bench.floor_app:app", "--bind", f"127.0.0.1:{port}"],
            WEB_ENV, tmp), f"http://127.0.0.1:{port}")

    def answers(self) -> bool:
        return requests.post(f"{self.url}/begin", timeout=1).status_code == 202


Target = RawServer | RawJobCreates | PublishedServer | GunicornFloor | Service  # what answers


@dataclass
class Row:
    kind: Callable[[Path], Target]
    rates: list[float] = field(default_factory=list)
    us_per_request: list[float] = field(default_factory=list)  # the whole stack's CPU
    gateway_us: list[float] = field(default_factory=list)  # its gunicorn processes' CPU


def measure(row: Row, directory: Path, seconds: int, run_load: Callable[..., load.Run]) -> None:
    directory.mkdir(parents=True)
    stack = row.kind(directory)
    try:
        stack.start()
        mode, path = stack.begin
        before = procs.snapshot(stack.roots())
        run = run_load(stack.url, mode, path, f"c{time.monotonic_ns()}", seconds, CONNECTIONS)
        used = procs.used(before, procs.snapshot(stack.roots()))
    finally:
        stack.stop()
    row.rates.append(run.per_second)
    row.us_per_request.append(1e6 * sum(cpu for cpu, _ in used.values()) / run.requests)
    row.gateway_us.append(1e6 * sum(cpu for name, (cpu, _) in used.items()
                                    if name.startswith("gunicorn")) / run.requests)


def report(rows: dict[str, Row]) -> str:
    """The table, and what TARGET_SHARE of the raw server's creates would take of the cores."""
    service = across(rows["this service"].rates)
    lines = [grid(
        ["POST answered by", "req/s", "req/s by round", "CPU us/request, stack",
         "of it gunicorn", "/begin over it"],
        [[title, f"{across(row.rates):.0f}", " ".join(f"{rate:.0f}" for rate in row.rates),
          f"{across(row.us_per_request):.0f}",
          f"{across(row.gateway_us):.0f}" if title in ("gunicorn floor", "this service") else "-",
          f"{service / across(row.rates):.2f}x"] for title, row in rows.items()])]
    raw = rows["raw server"]
    target = TARGET_SHARE * across(raw.rates)
    create_us = across(raw.us_per_request)
    cores = os.cpu_count() or 1
    for title, gateway_us in (("the gunicorn floor", across(rows["gunicorn floor"].gateway_us)),
                              ("this service's gateway", across(rows["this service"].gateway_us))):
        lines.append(
            f"{TARGET_SHARE:.0%} of the raw server's creates, {target:.0f} begins/s, at "
            f"{title}'s {gateway_us:.0f} us and the server's {create_us:.0f} us a create: "
            f"{target * (gateway_us + create_us) / 1e6:.2f} of {cores} cores, before any job runs")
    job_creates = across(rows["raw job creates"].rates)
    lines.append(
        f"The server and its worker, sent the creates that start jobs with no gateway between, "
        f"make {job_creates:.0f} a second: {job_creates / across(raw.rates):.0%} of the raw "
        f"server's creates; /begin makes {service / job_creates:.0%} of them")
    return "\n".join(lines)


def main() -> None:
    procs.exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="one round of 1 s, Python clients, no published server")
    args = parser.parse_args()
    kinds: dict[str, Callable[[Path], Target]] = {
        "raw server": RawServer, "raw job creates": RawJobCreates,
        "published server": PublishedServer,
        "gunicorn floor": GunicornFloor, "this service": Service}
    rounds, seconds, run_load = args.rounds, 3, load.wrk
    if args.quick:
        del kinds["published server"]
        rounds, seconds, run_load = 1, 1, load.python_load
    rows = {title: Row(kind) for title, kind in kinds.items()}
    load_before, started = os.getloadavg()[0], time.monotonic()
    with tempfile.TemporaryDirectory(prefix="async-api-ceiling-") as tmp:
        for number in range(rounds):
            titles = list(rows) if number % 2 == 0 else list(reversed(rows))
            for title in titles:
                print(f"ceiling: round {number + 1} of {rounds}: {title}", file=sys.stderr,
                      flush=True)
                measure(rows[title], Path(tmp) / f"{number}-{title.replace(' ', '-')}",
                        seconds, run_load)
    print(f"\n{os.cpu_count()} cores, load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; {rounds} round(s) of {seconds:g} s per row, "
          f"{CONNECTIONS} connections ({'Python threads' if args.quick else 'wrk'})\n")
    print(report(rows))
    print(f"benchmark took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
