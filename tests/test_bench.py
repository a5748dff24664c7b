"""`make bench` must keep working: its quick mode runs this service's rows once, for real.

No timing is asserted (speed is measured by the benchmark itself, not by tests): only that it
ran, printed its table with the expected rows, and lost no job.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT

ROWS = [
    "POST /begin", "GET /wait, settled id", "jobs done during /begin runs + drain",
    "1 client, begin -> resolved p50", "1 client, begin -> resolved p99", "1 client, jobs lost",
    "burst, throughput", "burst, polls per job", "burst, jobs lost",
    "CPU per job, burst", "idle CPU, whole stack, fresh", "CPU with no requests",
]


def test_quick_benchmark_prints_its_table_and_loses_no_job():
    done = subprocess.run([sys.executable, "-m", "bench", "--quick"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
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
