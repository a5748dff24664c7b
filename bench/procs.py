"""CPU time of a stack's processes, read from /proc/<pid>/stat (utime + stime).

A stack is a few root processes (the ones the benchmark started) and everything they forked:
gunicorn's workers, Celery's pool children. Each root's descendants are summed as one
"<root> children" row. A child that exits and is reaped moves its CPU into its parent's
cutime + cstime, which is counted too, so a difference of two snapshots stays exact when a
child dies in between.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def stat_fields(path: Path) -> list[str] | None:
    """Fields 3 and on of a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat (index 0 is field
    3 of proc(5)), or None when the process or thread is gone."""
    try:
        text = path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # Field 2 (comm) may hold spaces; fields from 3 on follow its closing parenthesis.
    return text[text.rindex(")") + 2:].split()


def _ticks(pid: int) -> int | None:
    """utime + stime + cutime + cstime of `pid`, or None when it is gone."""
    fields = stat_fields(Path(f"/proc/{pid}/stat"))
    return None if fields is None else sum(int(value) for value in fields[11:15])  # 14-17


def _children(pid: int) -> list[int]:
    """Direct children of every thread of `pid` (a child belongs to the thread that forked it)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return found
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def descendants(pid: int) -> list[int]:
    pending, found = _children(pid), []
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(_children(child))
    return found


def cpu_seconds(pid: int) -> float:
    """CPU seconds one process used so far (0 when it is gone)."""
    return (_ticks(pid) or 0) / TICKS_PER_SECOND


def snapshot(roots: dict[str, int]) -> dict[str, tuple[float, int]]:
    """{row: (CPU seconds so far, processes)}: one row per root, one per root's descendants."""
    rows: dict[str, tuple[float, int]] = {}
    for name, pid in roots.items():
        rows[name] = (cpu_seconds(pid), 1)
        children = [ticks for child in descendants(pid) if (ticks := _ticks(child)) is not None]
        if children:
            rows[f"{name} children"] = (sum(children) / TICKS_PER_SECOND, len(children))
    return rows


def used(before: dict[str, tuple[float, int]],
         after: dict[str, tuple[float, int]]) -> dict[str, tuple[float, int]]:
    """CPU seconds each row used between two snapshots, with its process count at the end."""
    return {row: (seconds - before.get(row, (0.0, 0))[0], count)
            for row, (seconds, count) in after.items()}


QUIET_PERCENT = 10.0  # of one core, the whole stack over QUIET_WINDOW_SECONDS: done starting
QUIET_WINDOW_SECONDS = 0.25


def wait_quiet(roots: dict[str, int], timeout: float = 20) -> None:
    """Waits until the stack, children included, is nearly idle (at most `timeout` seconds).

    A stack answers before it has finished starting: gunicorn's master takes connections as
    soon as one worker has loaded the app, while the other still imports Flask. Measured
    then, every connection wrk opens at once lands on the loaded worker (one process served
    them all in every `/begin` run), and the other's start-up counts as the run's CPU."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = snapshot(roots)
        time.sleep(QUIET_WINDOW_SECONDS)
        busy = sum(seconds for seconds, _ in used(before, snapshot(roots)).values())
        if 100 * busy / QUIET_WINDOW_SECONDS < QUIET_PERCENT:
            return


def exit_on_sigterm(code: int = 143) -> None:
    """SIGTERM, as Ctrl-C, exits through the `finally`s that stop what the benchmark started.
    Once: a SIGTERM to make's process group comes twice (make passes its own on to its child),
    and a second exit inside those `finally`s cut them short, leaving processes running."""

    def exit_once(*_: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.exit(code)

    signal.signal(signal.SIGTERM, exit_once)
