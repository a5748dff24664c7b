"""Starts and drains the worker runtime for some groups, in a process of its own
(`python -m workers`) or inside each gunicorn worker (EMBEDDED_WORKER_GROUPS).

What it says goes to the process's log (async_api.logs: `python -m workers` sets it up,
gunicorn.conf.py the gateway's), whose lines the tests wait for ("serving group").
"""

from __future__ import annotations

import logging
import time

from async_api import engine, logs
from async_api.settings import Settings
from workers.functions import GROUPS

_log = logging.getLogger(__name__)


def start(groups: list[str] | tuple[str, ...], settings: Settings) -> list[engine.Worker]:
    """WORKER_SCHEDULERS worker nodes per group (engine.run_worker)."""
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise ValueError(f"no such worker group: {', '.join(unknown)}")
    nodes = [
        node
        for group in groups
        for node in engine.run_worker(
            group, GROUPS[group], settings.resonate_url, settings.resonate_poll_url,
            nodes=settings.worker_schedulers,
            claim_ttl_seconds=settings.claim_ttl_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
            timeout_seconds=settings.engine_timeout_seconds,
        )
    ]
    _log.info("serving group %s from %s", ", ".join(map(repr, groups)), settings.resonate_url,
              extra=logs.fields(groups=list(groups)))
    return nodes


def drain(nodes: list[engine.Worker], grace_seconds: float) -> bool:
    """Stops taking tasks, lets the held ones finish; returns whether all did."""
    for node in nodes:  # all stop at once, then wait within one grace period
        node.poller.stop()
    # Only now: once this line is out no node takes a task, even with its process's threads
    # slow to run (8 nodes, a loaded machine: tests/test_shutdown.py's late job was taken).
    _log.info("stopping: draining %s task(s)", sum(node.held_tasks() for node in nodes))
    deadline = time.monotonic() + grace_seconds
    drained = all(node.drain(max(0.0, deadline - time.monotonic())) for node in nodes)
    _log.info("stopped (%s)", "drained" if drained else "tasks handed back")
    return drained
