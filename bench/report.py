"""The printed tables: one main table with ratios, then per process CPU, then the clients."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.load import SATURATED_PERCENT, Jobs, LongPolls, Run, median, percentile


@dataclass
class Result:
    """One stack's measurements."""

    title: str
    begin: list[Run] = field(default_factory=list)
    wait: list[Run] = field(default_factory=list)
    done_per_second: list[float] = field(default_factory=list)  # one per /begin run + drain
    begin_jobs: int = 0  # accepted over all /begin runs
    begin_unfinished: int = 0  # of those, still pending when the drain gave up
    begin_cpu: dict[str, tuple[float, int]] = field(default_factory=dict)
    latency: Jobs | None = None
    long_polls: LongPolls | None = None  # stacks with a long-poll only
    burst: Jobs | None = None
    burst_cpu: dict[str, tuple[float, int]] = field(default_factory=dict)
    idle_cpu: dict[str, tuple[float, int]] = field(default_factory=dict)  # fresh stack
    after_load_cpu: dict[str, tuple[float, int]] = field(default_factory=dict)  # no requests
    idle_seconds: float = 0.0  # of either


def _total(cpu: dict[str, tuple[float, int]]) -> float:
    return sum(seconds for seconds, _ in cpu.values())


def _ms(values: list[float], percent: float) -> float:
    return 1000 * percentile(values, percent)


def _per_job_ms(cpu: dict[str, tuple[float, int]], jobs: int) -> float:
    return 1000 * _total(cpu) / jobs if jobs and cpu else math.nan


def _idle_percent(result: Result, cpu: float) -> float:
    return 100 * cpu / result.idle_seconds if result.idle_seconds else math.nan


def _jobs(pick: Callable[[Jobs], float], which: str) -> Callable[[Result], float]:
    def value(result: Result) -> float:
        jobs = getattr(result, which)
        return pick(jobs) if jobs is not None else math.nan
    return value


# label, unit, better, value of a Result (NaN: not measured), ratio printed
METRICS: list[tuple[str, str, str, Callable[[Result], float], bool]] = [
    ("POST /begin (raw: POST /promises)", "req/s", "higher",
     lambda r: median([run.per_second for run in r.begin]), True),
    ("GET /wait, settled id (raw: GET /promises/ID)", "req/s", "higher",
     lambda r: median([run.per_second for run in r.wait]), True),
    ("jobs done during /begin runs + drain", "jobs/s", "higher",
     lambda r: median(r.done_per_second), True),
    ("/begin runs, jobs unfinished after the drain", "jobs", "lower",
     lambda r: r.begin_unfinished if r.done_per_second else math.nan, False),
    ("1 client, begin -> resolved p50", "ms", "lower",
     _jobs(lambda j: _ms(j.latencies, 50), "latency"), True),
    ("1 client, begin -> resolved p95", "ms", "lower",
     _jobs(lambda j: _ms(j.latencies, 95), "latency"), True),
    ("1 client, begin -> resolved p99", "ms", "lower",
     _jobs(lambda j: _ms(j.latencies, 99), "latency"), True),
    ("1 client, jobs lost", "jobs", "lower", _jobs(lambda j: j.lost, "latency"), False),
    ("1 client long-poll, requests per job", "req", "lower",
     lambda r: r.long_polls.requests / r.long_polls.jobs.jobs if r.long_polls else math.nan,
     True),
    ("1 client long-poll, begin -> resolved p50", "ms", "lower",
     lambda r: _ms(r.long_polls.jobs.latencies, 50) if r.long_polls else math.nan, True),
    ("long-poll answer after the job settled, p50", "ms", "lower",
     lambda r: _ms(r.long_polls.after_settle, 50) if r.long_polls else math.nan, False),
    ("long-poll answer after the job settled, p99", "ms", "lower",
     lambda r: _ms(r.long_polls.after_settle, 99) if r.long_polls else math.nan, False),
    ("burst, throughput", "jobs/s", "higher", _jobs(lambda j: j.per_second, "burst"), True),
    ("burst, begin -> resolved p50", "ms", "lower",
     _jobs(lambda j: _ms(j.latencies, 50), "burst"), True),
    ("burst, begin -> resolved p99", "ms", "lower",
     _jobs(lambda j: _ms(j.latencies, 99), "burst"), True),
    ("burst, polls per job", "polls", "lower",
     _jobs(lambda j: j.polls / j.jobs, "burst"), True),
    ("burst, jobs lost", "jobs", "lower", _jobs(lambda j: j.lost, "burst"), False),
    ("CPU per job, burst (with its polls)", "ms", "lower",
     lambda r: _per_job_ms(r.burst_cpu, r.burst.jobs - r.burst.lost) if r.burst else math.nan,
     True),
    ("CPU per job done, /begin runs (raw: per create)", "ms", "lower",
     lambda r: _per_job_ms(r.begin_cpu, r.begin_jobs - r.begin_unfinished), True),
    ("idle CPU, whole stack, fresh", "% core", "lower",
     lambda r: _idle_percent(r, _total(r.idle_cpu)), True),
    ("CPU with no requests, after the load", "% core", "lower",
     lambda r: _idle_percent(r, _total(r.after_load_cpu)), True),
]


def _number(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    if value >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio(top: float, bottom: float) -> str:
    if any(math.isnan(value) for value in (top, bottom)) or not bottom:
        return "-"
    return f"{top / bottom:.2f}x"


def grid(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = []
    for row in [header, ["-" * width for width in widths], *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width)
                                            for cell, width in zip(row[1:], widths[1:],
                                                                   strict=True)]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def main_table(results: dict[str, Result]) -> str:
    service, peer, raw = (results.get(key) for key in ("service", "peer", "raw"))
    present = [result for result in (raw, service, peer) if result]
    header = ["metric", "unit", "better", *(result.title for result in present)]
    if service and peer:
        header.append("service/peer")
    if service and raw:
        header.append("service/raw")
    rows = []
    for label, unit, better, value, ratio in METRICS:
        values = {id(result): value(result) for result in present}
        row = [label, unit, better, *(_number(values[id(result)]) for result in present)]
        if service and peer:
            row.append(_ratio(values[id(service)], values[id(peer)]) if ratio else "")
        if service and raw:
            row.append(_ratio(values[id(service)], values[id(raw)]) if ratio else "")
        rows.append(row)
    return grid(header, rows)


def process_table(results: dict[str, Result]) -> str:
    rows = []
    for result in results.values():
        burst_jobs = result.burst.jobs - result.burst.lost if result.burst else 0
        begin_jobs = result.begin_jobs - result.begin_unfinished
        for name in result.idle_cpu:
            seconds, count = result.idle_cpu[name]
            rows.append([
                result.title, f"{name} ({count})" if name.endswith("children") else name,
                _number(1000 * result.burst_cpu[name][0] / burst_jobs)
                if burst_jobs and name in result.burst_cpu else "-",
                _number(1000 * result.begin_cpu[name][0] / begin_jobs)
                if begin_jobs and name in result.begin_cpu else "-",
                _number(_idle_percent(result, seconds)),
                _number(_idle_percent(result, result.after_load_cpu[name][0]))
                if name in result.after_load_cpu else "-",
            ])
    return grid(["stack", "process", "CPU ms/job, burst", "CPU ms/job done, /begin runs",
                 "idle % core", "after load % core"], rows)


def client_table(results: dict[str, Result]) -> tuple[str, list[str]]:
    """The load generators' own numbers, and what saturated a core."""
    rows, saturated = [], []
    for result in results.values():
        for scenario, runs in (("POST /begin", result.begin), ("GET /wait", result.wait)):
            if not runs:
                continue
            rows.append([result.title, scenario, runs[0].client,
                         " ".join(_number(run.per_second) for run in runs),
                         _number(max(run.client_cpu for run in runs)),
                         str(sum(run.bad for run in runs))])
            if any(run.saturated for run in runs):
                saturated.append(f"{result.title} {scenario} ({runs[0].client})")
        for scenario, jobs in (("1 client", result.latency), ("burst", result.burst)):
            if jobs is None:
                continue
            rows.append([result.title, scenario, "python", "-", _number(jobs.client_cpu), "-"])
            if jobs.client_cpu >= SATURATED_PERCENT:
                saturated.append(f"{result.title} {scenario} (python)")
    table = grid(["stack", "scenario", "client", "req/s per run", "client CPU % core (max)",
                  "non-2xx + errors"], rows)
    return table, saturated
