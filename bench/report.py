"""The printed tables: one main table with ratios, then per process CPU, then the clients.

A stack is measured once per round (bench/__main__.py), so each stack has a list of Results,
one per round. A figure is the median over the rounds; a ratio is the median of the ratios
of each round, whose stacks ran one right after the other, so the machine's drift over the
whole benchmark moves both sides of a ratio alike."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.load import SATURATED_PERCENT, Jobs, LongPolls, Run, median, percentile


@dataclass
class Result:
    """One stack's measurements in one round."""

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


# Counted over all rounds rather than their median: a job lost in any round must show.
SUMMED = frozenset({"/begin runs, jobs unfinished after the drain", "1 client, jobs lost",
                    "burst, jobs lost"})


def across(values: list[float], summed: bool = False) -> float:
    """Rounds' (or runs') figures as one: the median of those measured (NaN: not measured
    then), or their sum for a count that must show whenever it happened."""
    measured = [value for value in values if not math.isnan(value)]
    return sum(measured) if summed and measured else median(measured)


def _ratios(top: list[Result], bottom: list[Result], value: Callable[[Result], float],
            ) -> list[float]:
    """top/bottom for each round that measured both."""
    pairs = [(value(a), value(b)) for a, b in zip(top, bottom, strict=False)]
    return [a / b for a, b in pairs if not (math.isnan(a) or math.isnan(b)) and b]


def _times(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio:.2f}x"


def main_table(results: dict[str, list[Result]]) -> str:
    service, peer, raw, raw_jobs = (results.get(key)
                                    for key in ("service", "peer", "raw", "rawjobs"))
    present = [rounds for rounds in (raw, raw_jobs, service, peer) if rounds]
    by_round = bool(service and peer and len(service) > 1)
    header = ["metric", "unit", "better", *(rounds[0].title for rounds in present)]
    sides = [(side, title) for side, title in ((peer, "service/peer"), (raw, "service/raw"),
                                               (raw_jobs, "service/raw job creates"))
             if service and side]
    header += [title for _, title in sides]
    if by_round:
        header.append("service/peer by round")
    rows = []
    for label, unit, better, value, ratio in METRICS:
        row = [label, unit, better,
               *(_number(across([value(result) for result in rounds], label in SUMMED))
                 for rounds in present)]
        ratios = [_ratios(service, side, value) if ratio else []
                  for side, _ in sides]  # per round; peer first
        row += [_times(across(each)) if ratio else "" for each in ratios]
        if by_round:
            row.append(" ".join(f"{each:.2f}" for each in ratios[0]))
        rows.append(row)
    return grid(header, rows)


def _process_ms(cpu: str, jobs: Callable[[Result], int], name: str,
                ) -> Callable[[Result], float]:
    """One process's CPU ms per job in a round, from the Result's `cpu` dict."""
    def value(result: Result) -> float:
        used, count = getattr(result, cpu).get(name, (math.nan, 0)), jobs(result)
        return 1000 * used[0] / count if count else math.nan
    return value


def process_table(results: dict[str, list[Result]]) -> str:
    """Per process, the median over the rounds."""
    rows = []
    for rounds in results.values():
        counts = {name: count for result in rounds
                  for cpu in (result.idle_cpu, result.begin_cpu, result.burst_cpu)
                  for name, (_, count) in cpu.items()}
        for name, count in counts.items():
            per_round = [
                _process_ms("burst_cpu", lambda r: r.burst.jobs - r.burst.lost
                            if r.burst else 0, name),
                _process_ms("begin_cpu", lambda r: r.begin_jobs - r.begin_unfinished, name),
                lambda r, name=name: _idle_percent(r, r.idle_cpu.get(name, (math.nan,))[0]),
                lambda r, name=name: _idle_percent(r, r.after_load_cpu.get(name, (math.nan,))[0]),
            ]
            rows.append([rounds[0].title, f"{name} ({count})" if name.endswith("children")
                         else name,
                         *(_number(across([value(r) for r in rounds])) for value in per_round)])
    return grid(["stack", "process", "CPU ms/job, burst", "CPU ms/job done, /begin runs",
                 "idle % core", "after load % core"], rows)


def client_table(results: dict[str, list[Result]]) -> tuple[str, list[str]]:
    """The load generators' own numbers, every round's, and what saturated a core."""
    rows, saturated = [], []
    for rounds in results.values():
        title = rounds[0].title
        for scenario, runs in (("POST /begin", [run for r in rounds for run in r.begin]),
                               ("GET /wait", [run for r in rounds for run in r.wait])):
            if not runs:
                continue
            rows.append([title, scenario, runs[0].client,
                         " ".join(_number(run.per_second) for run in runs),
                         _number(max(run.client_cpu for run in runs)),
                         str(sum(run.bad for run in runs))])
            if any(run.saturated for run in runs):
                saturated.append(f"{title} {scenario} ({runs[0].client})")
        for scenario, which in (("1 client", "latency"), ("burst", "burst")):
            jobs = [getattr(r, which) for r in rounds if getattr(r, which) is not None]
            if not jobs:
                continue
            client_cpu = max(j.client_cpu for j in jobs)
            rows.append([title, scenario, "python", "-", _number(client_cpu), "-"])
            if client_cpu >= SATURATED_PERCENT:
                saturated.append(f"{title} {scenario} (python)")
    table = grid(["stack", "scenario", "client", "req/s per run", "client CPU % core (max)",
                  "non-2xx + errors"], rows)
    return table, saturated
