"""The README's run command keeps running: supervisord restarts what dies, Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import requests

from tests.support.make_run import start_make_run
from tests.support.processes import ROOT, wait_until


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid`, with its command line."""
    found: dict[int, str] = {}
    stack = [pid]
    while stack:
        parent = stack.pop()
        path = Path(f"/proc/{parent}/task/{parent}/children")
        for child in map(int, path.read_text().split()) if path.exists() else []:
            cmdline = Path(f"/proc/{child}/cmdline")
            found[child] = cmdline.read_text().replace("\0", " ") if cmdline.exists() else ""
            stack.append(child)
    return found


def pids_of(pid: int, needle: str) -> set[int]:
    return {child for child, cmdline in descendants(pid).items() if needle in cmdline}


def job_resolves(gateway: str, job_id: str) -> None:
    assert requests.post(f"{gateway}/begin", params={"id": job_id}, timeout=10).status_code == 202
    wait_until(lambda: requests.get(f"{gateway}/wait", params={"id": job_id},
                                    timeout=5).json()["status"] == "resolved",
               60, f"{job_id} to resolve")


def test_a_killed_worker_or_server_is_started_again_and_ctrl_c_stops_everything(tmp_path,
                                                                                nonce):
    service, gateway = start_make_run(tmp_path, "WORKER_PROCESSES=2")
    try:
        workers = pids_of(service.pid, "--group worker")
        assert len(workers) == 2, descendants(service.pid)  # WORKER_PROCESSES=2
        # `make status`, as the README says, from another terminal: every program is running.
        status = subprocess.run(["make", "-s", "status", f"RUN_DIR={tmp_path / 'run'}"],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        running = [line for line in status.stdout.splitlines() if " RUNNING " in line]
        assert len(running) == 7, status.stdout + status.stderr  # engine, gateway, 5 workers
        others = pids_of(service.pid, "--group") - workers | pids_of(service.pid, "gunicorn")

        doomed = min(workers)
        os.kill(doomed, signal.SIGKILL)
        replaced = wait_until(
            lambda: len(now := pids_of(service.pid, "--group worker")) == 2
            and doomed not in now and now, 15, "the worker to be started again")
        assert workers - {doomed} <= replaced

        (engine,) = pids_of(service.pid, "resonate serve")
        os.kill(engine, signal.SIGKILL)
        wait_until(lambda: pids_of(service.pid, "resonate serve") - {engine}, 15,
                   "the Resonate server to be started again")
        wait_until(lambda: requests.get(f"{gateway}/readyz", timeout=1).ok, 15,
                   "the gateway to see the server again")
        job_resolves(gateway, f"after-restarts-{nonce}")
        # Nothing else was restarted: same gateway and workers of the other groups.
        assert others <= set(descendants(service.pid)), "a process that was not killed died"

        everything = set(descendants(service.pid))
        os.killpg(service.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        service.popen.wait(60)
        wait_until(lambda: not [pid for pid in everything if Path(f"/proc/{pid}").exists()],
                   10, "every process to exit after Ctrl-C")
    finally:
        service.stop(group=True)


def test_make_run_without_a_worker_process_stops_at_once(tmp_path):
    """supervisord started no `worker` group at all, and /begin's jobs never ran."""
    done = subprocess.run(["make", "-s", "run", "WORKER_PROCESSES=0", f"RUN_DIR={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert done.returncode == 2, done.stdout + done.stderr
    assert "WORKER_PROCESSES must be a whole number, 1 or more, not '0'" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing started
