"""`make bench` must keep working: its quick mode runs this service's rows, for real, in two
rounds as the full benchmark makes three. So must `make bench-ceiling` (bench/ceiling.py).

No timing is asserted (speed is measured by the benchmark itself, not by tests): only that it
ran, printed its table with the expected rows, and lost no job; and, on made-up figures, that
the table sums losses and takes each ratio as the median of the rounds' ratios. A benchmark
stopped by SIGTERM stops the processes it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import ceiling, procs
from bench.load import Jobs, Run
from bench.report import Result, main_table
from tests.support.processes import ROOT, wait_until

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


def test_quick_ceiling_benchmark_prints_every_row():
    """`make bench-ceiling`'s quick mode: the raw server, its job creates, the gunicorn floor
    and this service, for real (the published server is left out: it is built from source on
    demand)."""
    done = subprocess.run([sys.executable, "-m", "bench.ceiling", "--quick"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {line.split("  ")[0]: line for line in done.stdout.splitlines()}
    for title in ("raw server", "raw job creates", "gunicorn floor", "this service"):
        assert float(rows[title].split()[len(title.split())]) > 0, done.stdout  # its req/s
    assert rows["this service"].endswith("1.00x"), done.stdout
    assert sum(line.startswith("60% of the raw server's creates") for line in rows) == 2
    assert any(line.startswith("The server and its worker, sent the creates that start jobs")
               for line in rows), done.stdout


def test_the_ceiling_counts_the_cores_a_target_rate_would_take():
    """On made-up figures: 60 % of 1,000 creates/s at 400 us a create plus a gateway's 200 or
    1,000 us a begin takes 0.36 or 0.84 of the cores."""
    rows = {
        "raw server": ceiling.Row(ceiling.RawServer, [1000.0], [400.0], [0.0]),
        "raw job creates": ceiling.Row(ceiling.RawJobCreates, [800.0], [1200.0], [0.0]),
        "gunicorn floor": ceiling.Row(ceiling.GunicornFloor, [5000.0], [200.0], [200.0]),
        "this service": ceiling.Row(ceiling.Service, [500.0], [3000.0], [1000.0]),
    }
    text = ceiling.report(rows)
    assert "600 begins/s, at the gunicorn floor's 200 us and the server's 400 us a create: 0.36" \
        in text, text
    assert "at this service's gateway's 1000 us and the server's 400 us a create: 0.84" in text
    assert "0.50x" in text.splitlines()[2]  # /begin over the raw server's creates
    assert "make 800 a second: 80% of the raw server's creates; /begin makes 62% of them" in text


def test_the_table_sets_begin_beside_the_raw_job_creates():
    """The fourth stack has the /begin run only: its column has the POST row, the other rows
    say "-", and the POST row gets a ratio of its own."""
    service = [_round("svc", 500, 0)]
    raw_jobs = [Result("raw server, job creates")]
    raw_jobs[0].begin = [Run(per_second=1000, requests=1, bad=0, client_cpu=1, client="wrk")]
    lines = main_table({"service": service, "rawjobs": raw_jobs}).splitlines()
    assert lines[0].split()[-3:] == ["service/raw", "job", "creates"], lines[0]
    rows = {line.split("  ")[0]: line.split() for line in lines}
    assert rows["POST /begin (raw: POST /promises)"][-3:] == ["1000", "500", "0.50x"]
    assert rows["burst, throughput"][-3:] == ["-", "10", "-"], rows["burst, throughput"]


def _alive(pid: int) -> bool:
    """Running, not a zombie its parent has yet to reap."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_bench_stopped_by_sigterm_twice_stops_its_stack(tmp_path):
    """`make bench-scale` stopped by SIGTERM (a timeout, a CI job canceled) left its server,
    worker and gateway running, each in a session of its own. A SIGTERM to make's process
    group reaches the benchmark twice (make passes its own on to its child): the second, while
    the first's `finally` stopped the stack, cut that short and left the server running."""
    log = open(tmp_path / "scale.log", "wb")  # noqa: SIM115 - the child owns it
    bench = subprocess.Popen([sys.executable, "-m", "bench.scale", "--sizes", "0"], cwd=ROOT,
                             stdout=log, stderr=subprocess.STDOUT)
    log.close()
    started: list[int] = []
    try:
        # server, worker and gunicorn master, with gunicorn's workers under it
        wait_until(lambda: len(procs.descendants(bench.pid)) >= 5, 60, "the stack to start")
        time.sleep(1)
        started = procs.descendants(bench.pid)
        bench.terminate()
        time.sleep(0.5)  # make's own SIGTERM, while the stack stops
        bench.terminate()
        bench.wait(60)
        try:
            wait_until(lambda: not [pid for pid in started if _alive(pid)], 30, "the stack")
        except AssertionError:  # which process it left says where to look
            survivors = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                         for pid in started if _alive(pid)}
            raise AssertionError(f"still running 30 s after SIGTERM: {survivors}; the "
                                 f"benchmark said: {(tmp_path / 'scale.log').read_text()}"
                                 ) from None
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
        for pid in started:  # what the benchmark left, so that no test after it meets it
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
