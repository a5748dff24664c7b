"""Benchmark: gunicorn serving models for the gateway, compared on this machine with wrk.

Starts one Resonate server and one worker (tests/support/stack.py), then, round after round, for
each model (gthread as it was, gevent as it is, by worker count) starts a gateway and measures:

  wait     wrk: GET /wait of a finished job
  begin    wrk: POST /begin, retrying the same 32 jobs with the same bodies (the idempotent path:
           the gateway does all its work, the server finds the job instead of creating it)
  slow     /healthz and POST /begin answer times on new connections while 200 slow clients
           (tests/support/slow_clients.py) trickle headers and bodies

The gateways run without the admission gate (ADMISSION_MAX_REQUESTS=0), which would refuse
what 32 connections offer past 16 at work in a process: this compares serving models, the gate
is measured by `make bench-overload`. req/s counts 2xx answers only; the rounds' lines also say
how many were not. Begins make no new jobs on purpose: a backlog of jobs costs the server
CPU, so the models measured later would meet a slower server. The models take turns within
each round, so drift on a shared machine hits them alike; the table shows the median over
rounds. Needs wrk (Debian package). Usage:
  .venv/bin/python -m bench.serving [--rounds 3] [--seconds 10] [--connections 32]"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import requests

from bench import procs
from tests.support.processes import Process
from tests.support.slow_clients import SlowClients
from tests.support.stack import Stack

# name -> (gunicorn arguments beyond gunicorn.conf.py, worker processes)
MODELS = {
    "gthread 2x4 (before)": ("--worker-class gthread --threads 4", 2),
    "gthread 4x4": ("--worker-class gthread --threads 4", 4),
    "gevent 1 worker": ("", 1),
    "gevent 2 workers (default)": ("", 2),
    "gevent 4 workers": ("", 4),
}
SLOW_CLIENTS = 200
PROBES = 10
PROBE_TIMEOUT = 5.0

JOBS = 32
BODY = {"foo": "bench"}
# POST /begin over the ids <prefix>-0 .. <prefix>-(size - 1), each with the body it was begun with.
BEGIN_SCRIPT = """
function init(args)
  prefix, size, body, counter = args[1], tonumber(args[2]), args[3], 0
end
function request()
  counter = counter + 1
  return wrk.format("POST", "/begin?id=" .. prefix .. "-" .. (counter % size),
                    {["Content-Type"] = "application/json"}, body)
end
"""


def wrk(gateway: Process, url: str, seconds: int, connections: int,
        script: Path | None = None, *script_args: str) -> dict:
    """Runs wrk against `gateway`; returns req/s, p50 and p99 latency (ms), the count of failed
    requests and the gateway's CPU time per request (ms): on a shared machine, the one figure
    that other processes' load does not move much."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        args += ["-s", str(script)]
    cpu = _cpu_seconds(gateway)
    output = subprocess.run([*args, url, "--", *script_args], check=True,
                            capture_output=True, text=True).stdout
    cpu = _cpu_seconds(gateway) - cpu
    failed = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    failed += sum(int(n) for n in errors.groups()) if errors else 0
    count = int(re.search(r"(\d+) requests in", output).group(1))
    answered = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return {"rps": answered * (count - failed) / max(count, 1),  # 2xx answers only
            "p50": _ms(re.search(r"\s50%\s+(\S+)", output).group(1)),
            "p99": _ms(re.search(r"\s99%\s+(\S+)", output).group(1)), "failed": failed,
            "cpu_ms": cpu * 1000 / max(count, 1)}


def _cpu_seconds(gateway: Process) -> float:
    """CPU time used so far by the gunicorn master and its worker processes."""
    total = 0
    for pid in [gateway.pid, *gateway.children()]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60_000}[unit]


def under_slow_clients(url: str, run: str) -> dict:
    """Answer times (ms) of /healthz and /begin while SLOW_CLIENTS trickle; None: no answer."""
    times: dict[str, list[float | None]] = {"healthz": [], "begin": []}
    half = SLOW_CLIENTS // 2
    with SlowClients(url, half, "headers") as heads, SlowClients(url, half, "body") as bodies:
        while heads.rounds < 2 or bodies.rounds < 2:
            time.sleep(0.1)
        for index in range(PROBES):
            for name, method, path in (("healthz", "GET", "/healthz"),
                                       ("begin", "POST", f"/begin?id={run}-slow-{index}")):
                started = time.perf_counter()
                try:
                    requests.request(method, url + path, timeout=PROBE_TIMEOUT).raise_for_status()
                    times[name].append((time.perf_counter() - started) * 1000)
                except requests.RequestException:
                    times[name].append(None)
            if times["healthz"].count(None) >= 2:
                break  # stalled: more probes would only take longer
    return times


def _medians(runs: list[dict]) -> dict:
    return {field: statistics.median(run[field] for run in runs) for field in runs[0]}


def _slow_cell(samples: list[list[float | None]]) -> str:
    """Median over rounds of each round's median and worst answer time, or how many probes
    got no answer."""
    missed = sum(values.count(None) for values in samples)
    if missed:
        return f"{missed} of {sum(map(len, samples))} got no answer in {PROBE_TIMEOUT:.0f} s"
    median = statistics.median(statistics.median(values) for values in samples)
    worst = statistics.median(max(values) for values in samples)
    return f"p50 {median:.0f} ms, max {worst:.0f} ms"


def main() -> None:
    procs.exit_on_sigterm(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    results: dict[str, dict[str, list]] = {name: {"begin": [], "wait": [], "healthz": [],
                                                  "slow_begin": []} for name in args.models}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "begin.lua"
        script.write_text(BEGIN_SCRIPT)
        stack = Stack(Path(tmp) / "stack")
        stack.dir.mkdir()
        try:
            stack.engine.start()
            stack.start_worker("worker")
            jobs = f"bench-{uuid.uuid4().hex[:8]}"  # <jobs>-0 .. -31: finished jobs
            for round_ in range(args.rounds):
                for name in args.models:
                    cmd_args, workers = MODELS[name]
                    gateway = stack.start_gateway({"GUNICORN_CMD_ARGS": cmd_args,
                                                   "ADMISSION_MAX_REQUESTS": "0"}, workers)
                    stack.gateway_url = gateway.url
                    if not round_:
                        for index in range(JOBS):
                            stack.begin(f"{jobs}-{index}", BODY).raise_for_status()
                        for index in range(JOBS):
                            stack.wait_settled(f"{jobs}-{index}")
                    wait_url = f"{gateway.url}/wait?id={jobs}-0"
                    wrk(gateway, wait_url, 2, args.connections)  # warm-up
                    wait = wrk(gateway, wait_url, args.seconds, args.connections)
                    begin = wrk(gateway, gateway.url, args.seconds, args.connections, script,
                                jobs, str(JOBS), json.dumps(BODY))
                    slow = under_slow_clients(gateway.url, f"bench-{uuid.uuid4().hex[:8]}")
                    gateway.stop()
                    for key, value in (("begin", begin), ("wait", wait),
                                       ("healthz", slow["healthz"]),
                                       ("slow_begin", slow["begin"])):
                        results[name][key].append(value)
                    print(f"round {round_ + 1} {name}: begin {begin['rps']:.0f}/s "
                          f"(p99 {begin['p99']:.0f} ms, cpu {begin['cpu_ms']:.2f} ms, "
                          f"{begin['failed']} failed), wait {wait['rps']:.0f}/s (p99 "
                          f"{wait['p99']:.0f} ms, cpu {wait['cpu_ms']:.2f} ms, "
                          f"{wait['failed']} failed), slow healthz "
                          f"{_slow_cell([slow['healthz']])}", flush=True)
        finally:
            stack.stop()

    print(f"\nmedians of {args.rounds} rounds; wrk -t2 -c{args.connections} "
          f"-d{args.seconds}s; {SLOW_CLIENTS} slow clients\n")
    print("| model | POST /begin 2xx/s | p99 ms | CPU ms | GET /wait 2xx/s | p99 ms | CPU ms "
          "| /healthz under slow clients | POST /begin under slow clients |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for name, row in results.items():
        begin, wait = _medians(row["begin"]), _medians(row["wait"])
        print(f"| {name} | {begin['rps']:.0f} | {begin['p99']:.0f} | {begin['cpu_ms']:.2f} "
              f"| {wait['rps']:.0f} | {wait['p99']:.0f} | {wait['cpu_ms']:.2f} "
              f"| {_slow_cell(row['healthz'])} | {_slow_cell(row['slow_begin'])} |")
    print("\nCPU ms: the gateway's CPU time per request (all its processes).")

if __name__ == "__main__":
    main()
