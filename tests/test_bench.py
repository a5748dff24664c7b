"""`make bench` must keep working: its quick mode runs this service's rows, for real, in two
rounds as the full benchmark makes three.

No timing is asserted (speed is measured by the benchmark itself, not by tests): only that it
ran, printed its table with the expected rows, and lost no job; and, on made-up figures, that
the table sums losses and takes each ratio as the median of the rounds' ratios.
"""

from __future__ import annotations

import subprocess
import sys

from bench.load import Jobs, Run
from bench.report import Result, main_table
from tests.support.processes import ROOT

ROWS = [
    "POST /begin", "GET /wait, settled id", "jobs done during /begin runs + drain",
    "1 client, begin -> resolved p50", "1 client, begin -> resolved p99", "1 client, jobs lost",
    "burst, throughput", "burst, polls per job", "burst, jobs lost",
    "CPU per job, burst", "idle CPU, whole stack, fresh", "CPU with no requests",
]


def test_quick_benchmark_prints_its_table_and_loses_no_job():
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--rounds", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("metric "))
    assert header.split()[-2:] == ["this", "service"], header
    rows = {row: next((line for line in lines if line.startswith(row)), None) for row in ROWS}
    assert None not in rows.values(), (rows, done.stdout)
    for row in ("1 client, jobs lost", "burst, jobs lost"):
        assert rows[row].split()[-1] == "0", rows[row]
    for process in ("resonate server", "gunicorn children (2)", "worker"):
        assert any(process in line for line in lines), done.stdout
    assert "client saturated" in done.stdout  # the verdict on the client's own CPU


def _round(title: str, begins_per_second: float, burst_lost: int) -> Result:
    result = Result(title)
    result.begin = [Run(per_second=begins_per_second, requests=1, bad=0, client_cpu=1,
                        client="wrk")]
    result.burst = Jobs(jobs=10, latencies=[0.1] * (10 - burst_lost), polls=10, elapsed=1,
                        client_cpu=1)
    return result


def test_the_table_takes_each_ratio_from_its_round_and_shows_a_loss_in_any_round():
    # The peer is fast in the first round and slow in the others: the ratio of the medians
    # (500 / 500) would say 1.00x; the rounds' own ratios are 0.5x, 1.25x and 1.2x.
    service = [_round("svc", 500, 0), _round("svc", 500, 0), _round("svc", 600, 2)]
    peer = [_round("peer", 1000, 0), _round("peer", 400, 0), _round("peer", 500, 0)]
    rows = {line.split("  ")[0]: line.split()
            for line in main_table({"service": service, "peer": peer}).splitlines()}
    begin = rows["POST /begin (raw: POST /promises)"]
    assert begin[-6:] == ["500", "500", "1.20x", "0.50", "1.25", "1.20"], begin
    assert rows["burst, jobs lost"][-2:] == ["2", "0"], rows["burst, jobs lost"]
