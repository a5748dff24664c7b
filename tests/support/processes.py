"""Child processes for the tests: each logs to a file, runs in its own process group and can be
killed (the crash the product must survive) or stopped politely."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
STOP_TIMEOUT_SECONDS = 15
# How long a test stack's teardown lets a worker drain: one still holding a task would wait its
# whole WORKER_GRACE_SECONDS (20 s) for a job no test reads any more (15 s of each teardown).
TEARDOWN_DRAIN_SECONDS = 2
# How often a process that lost its port (taken between free_port() and its bind) is started
# again on fresh ports.
PORT_ATTEMPTS = 5


class PortTaken(Exception):
    """A child could not bind a port chosen for it: another process took it meanwhile."""


def free_port() -> int:
    """A port free now; another process may take it before the child binds it, so a child
    started on it goes through `Process.start_on_fresh_ports` (or binds port 0 itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lost_its_port(log: str) -> bool:
    """Whether a log says the bind failed: Go's and PostgreSQL's words, and gunicorn's."""
    lowered = log.lower()
    return "address already in use" in lowered or "connection in use" in lowered


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate` until it returns something truthy; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (requests.RequestException, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last_error})")


class Process:
    """A child process whose output goes to a log file, started in its own process group and,
    unless `own_session` is False (as supervisord starts its programs), its own session."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path,
                 own_session: bool = True) -> None:
        self.name = name
        self.own_session = own_session
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None
        self.log_offset = 0  # where the current run's output starts in the log

    def start(self) -> Process:
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.popen = subprocess.Popen(
            self.args, cwd=ROOT, env={**os.environ, **self.env}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=self.own_session,
            process_group=None if self.own_session else 0,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, group: bool = False) -> None:
        """SIGKILL (to the whole process group with `group`), the crash the product must
        survive."""
        if self.alive():
            (os.killpg if group else os.kill)(self.pid, signal.SIGKILL)
            self.popen.wait(10)

    def start_on_fresh_ports(self, choose_ports: Callable[[], None],
                             ready: Callable[[], Any], what: str) -> Any:
        """Starts the process and waits for `ready`; when it exits because one of its ports was
        taken meanwhile, `choose_ports` picks new ones and it starts again."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            Process.start(self)  # not a subclass's start, which may call this
            try:
                return wait_until(partial(self._started, ready, attempt < PORT_ATTEMPTS), 30,
                                  what)
            except PortTaken:
                choose_ports()
        raise AssertionError("unreachable")

    def _started(self, ready: Callable[[], Any], may_retry: bool) -> Any:
        if not self.alive():
            if may_retry and lost_its_port(self.run_log()):
                raise PortTaken
            raise AssertionError(f"{self.name} exited:\n{self.run_log()}")
        return ready()

    def stop(self, group: bool = False, wait_seconds: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM (to the whole process group with `group`), then SIGKILL to the group if it
        lingers past `wait_seconds`."""
        self.ask_to_stop(group)
        self.wait_stopped(wait_seconds)

    def ask_to_stop(self, group: bool = False) -> None:
        """SIGTERM; a process that is gone has its orphans (a killed leader's) killed."""
        if not self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        elif group:
            os.killpg(self.pid, signal.SIGTERM)
        else:
            self.popen.send_signal(signal.SIGTERM)

    def wait_stopped(self, wait_seconds: float = STOP_TIMEOUT_SECONDS) -> None:
        """Waits for the exit `ask_to_stop` asked for; SIGKILL to the group past `wait_seconds`."""
        if self.popen is None:
            return
        try:
            self.popen.wait(wait_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(10)

    def children(self) -> list[int]:
        """Pids of the direct children, e.g. a gunicorn master's worker processes."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def json_lines(self) -> list[dict]:
        """Every complete line of the log as the JSON object it must be (LOG_FORMAT=json, the
        default): a line that is not one fails the test that reads it. A last line still being
        written is left for the next read."""
        complete = self.log().split("\n")[:-1]
        return [json.loads(line) for line in complete if line.strip()]

    def run_log(self) -> str:
        """The output of the current run only (the log file is shared by restarts)."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")
