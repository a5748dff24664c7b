"""`make run`, the README's run command, started by a test on free ports in a temp dir."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.support.processes import Process, free_port, wait_until


def start_make_run(tmp_path: Path, *make_args: str) -> tuple[Process, str]:
    """Starts `make run` in a session of its own; returns it and the gateway's URL once ready.

    Stop it with `process.stop(group=True)`, or SIGINT to its group as Ctrl-C would send.
    """
    http, poll, port = free_port(), free_port(), free_port()
    env = {
        "RESONATE_HTTP_ADDR": f"127.0.0.1:{http}", "RESONATE_POLL_ADDR": f"127.0.0.1:{poll}",
        "RESONATE_GRPC_ADDR": f"127.0.0.1:{free_port()}",
        "RESONATE_METRICS_ADDR": f"127.0.0.1:{free_port()}",
        "RESONATE_URL": f"http://127.0.0.1:{http}", "RESONATE_POLL_URL": f"http://127.0.0.1:{poll}",
        "RESONATE_DATA_DIR": str(tmp_path / "data"), "LEDGER_PATH": str(tmp_path / "ledger"),
    }
    service = Process("make-run", ["make", "run", f"PORT={port}",
                                   f"RUN_DIR={tmp_path / 'run'}", *make_args], env, tmp_path)
    service.start()
    gateway = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{gateway}/readyz", timeout=1).ok, 60, "make run to serve")
    return service, gateway
