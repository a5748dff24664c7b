"""`make run`, the README's run command, started by a test on free ports in a temp dir."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import requests

from tests.support.processes import (
    PORT_ATTEMPTS,
    PortTaken,
    Process,
    free_port,
    lost_its_port,
    wait_until,
)


def start_make_run(tmp_path: Path, *make_args: str) -> tuple[Process, str]:
    """Starts `make run` in a session of its own; returns it and the gateway's URL once ready.

    supervisord restarts a program that could not bind its port instead of exiting, so a port
    taken between its choice and the bind shows only in the output: then the whole run is
    stopped and started again on fresh ports. Stop it with `process.stop(group=True)`, or
    SIGINT to its group as Ctrl-C would send.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        service, gateway = _start_on_free_ports(tmp_path, make_args)
        try:
            wait_until(partial(_serving, service, gateway, attempt < PORT_ATTEMPTS), 60,
                       "make run to serve")
        except PortTaken:
            service.stop(group=True)
            continue
        return service, gateway
    raise AssertionError("unreachable")


def _serving(service: Process, gateway: str, may_retry: bool) -> bool:
    if may_retry and lost_its_port(service.run_log()):
        raise PortTaken
    return requests.get(f"{gateway}/readyz", timeout=1).ok


def _start_on_free_ports(tmp_path: Path, make_args: tuple[str, ...]) -> tuple[Process, str]:
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
    return service, f"http://127.0.0.1:{port}"
