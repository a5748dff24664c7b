"""A worker process gives way on the CPU (WORKER_NICE, workers/priority.py): real worker
processes, started as the tests and the benchmark start them (a session of their own), as
supervisord does (in the session of whoever started them) and as honcho runs a Procfile line."""

from __future__ import annotations

import os
from pathlib import Path

from async_api.settings import Settings
from bench import procs
from tests.support.processes import BIN, ROOT, Process, wait_until
from tests.support.stack import Stack

NICE = Settings.worker_nice  # the default, which the tests' workers run with


def nice_value(pid: int) -> int:
    """The process's nice value: that of every one of its threads (Linux keeps one per thread,
    and a thread starts with its creator's), field 19 of their stat; a thread that ended has
    none."""
    values = {int(fields[16]) for stat in Path(f"/proc/{pid}/task").glob("*/stat")
              if (fields := procs.stat_fields(stat)) is not None}
    assert len(values) == 1, f"threads of {pid} differ: {values}"
    return values.pop()


def session_nice_value(pid: int) -> int | None:
    """The nice value of the process's session (autogroup): "/autogroup-42 nice 10". None for
    the kernel's default group, whose file is empty: that of init and of whatever it starts
    without a new session (CI's test runner), which no process changes."""
    text = Path(f"/proc/{pid}/autogroup").read_text()
    return int(text.split()[-1]) if text else None


def test_a_worker_in_a_session_of_its_own_lowers_itself_and_its_session(stack: Stack) -> None:
    runner = nice_value(os.getpid())  # what every process started here begins with
    # What the fixture started (alive: conftest checks it); other tests add and stop workers.
    for process in stack.started_with:
        if process in stack.workers:
            assert nice_value(process.pid) == min(runner + NICE, 19), process.name
            assert session_nice_value(process.pid) == NICE, process.name  # a new one starts at 0
        else:
            assert (nice_value(process.pid), session_nice_value(process.pid)) == (runner, 0), \
                process.name


def test_a_worker_in_a_shared_session_lowers_only_itself(make_stack) -> None:
    """As under supervisord (`make run`): the session is also the gateway's and the
    server's, here the test runner's, and must keep its weight."""
    private: Stack = make_stack()
    private.engine.start()
    runner_session = session_nice_value(os.getpid())
    worker = private.start_worker(own_session=False)
    assert os.getsid(worker.pid) == os.getsid(0)
    assert nice_value(worker.pid) == min(nice_value(os.getpid()) + NICE, 19)
    assert session_nice_value(worker.pid) == session_nice_value(os.getpid()) == runner_session


def test_worker_nice_0_leaves_the_priority_as_it_was(make_stack) -> None:
    private: Stack = make_stack()
    private.engine.start()
    worker = private.start_worker(env={"WORKER_NICE": "0"})
    assert (nice_value(worker.pid), session_nice_value(worker.pid)) == (nice_value(os.getpid()), 0)


def procfile_command(name: str) -> str:
    """The command of the Procfile's line `name`."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key == name:
            return command.strip()
    raise AssertionError(f"the Procfile has no {name} line")


def test_a_procfile_worker_line_lowers_the_session_it_is_run_in(make_stack) -> None:
    """honcho runs each Procfile line as `sh -c LINE` in a session of its own. A worker the
    shell started as its child did not lead that session and left its weight alone: against
    the gateway's session it weighed as much as with WORKER_NICE=0."""
    private: Stack = make_stack()
    private.engine.start()
    line = Process("procfile-worker", ["/bin/sh", "-c", procfile_command("worker")],
                   {**private.env(), "PATH": f"{BIN}:{os.environ['PATH']}"}, private.dir)
    line.start()
    try:
        wait_until(lambda: "serving group" in line.log() or not line.alive(), 20,
                   "the Procfile's worker to start")
        assert line.alive(), line.log()
        assert session_nice_value(line.pid) == NICE
    finally:
        line.stop(group=True)
