"""A worker process gives way on the CPU (WORKER_NICE): jobs are asynchronous by contract, so
when the CPU is full a job may wait a little, while the gateway's requests and the server's
writes may not (PERFORMANCE.md, "Workers give way on the CPU": with the worker at the
gateway's priority, it took the CPU the gateway needed, and `POST /begin` and the overload's
refusals waited for it).

Linux shares the CPU first among sessions (autogroup: each `setsid` makes one), then among a
session's processes by their nice value. A worker that leads its own session (the tests, the
benchmark, `setsid python -m workers`, a Procfile line under honcho: hence the Procfile's
`exec`) lowers its session's weight too; one started by supervisord (`make run`) or foreman
shares that session, where its nice value decides, and must not lower the others. Under
systemd or in a container, the unit's or the container's CPU weight decides between them
instead (README, "Deploying").
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

_log = logging.getLogger(__name__)
AUTOGROUP = Path("/proc/self/autogroup")
_TRIES = 20  # unprivileged, the kernel takes ten autogroup changes a second, machine-wide


def give_way(nice: int) -> None:
    """Lowers this process's CPU priority by `nice` (raising it back needs privilege)."""
    if nice <= 0:
        return
    try:
        os.nice(nice)
        if os.getsid(0) == os.getpid() and AUTOGROUP.exists():
            _set_autogroup(nice)
    except OSError as exc:  # a sandbox that forbids it: the worker still works, at full weight
        _log.warning("could not lower the CPU priority: %s", exc)


def _set_autogroup(nice: int) -> None:
    for _ in range(_TRIES):
        try:
            AUTOGROUP.write_text(str(nice))
            return
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
            time.sleep(0.1)
    raise OSError(errno.EAGAIN, f"{AUTOGROUP} refused {_TRIES} times")
