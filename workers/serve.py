"""Starts and drains the worker runtime for some groups, in a process of its own
(`python -m workers`) or inside each gunicorn worker (EMBEDDED_WORKER_GROUPS)."""

from __future__ import annotations

import logging
import os

from async_api import engine
from async_api.settings import Settings
from workers.functions import GROUPS


def start(groups: list[str] | tuple[str, ...], settings: Settings) -> list[engine.Worker]:
    """One worker node per group, each polling the server under its own process id."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"),
                        format="%(asctime)s worker[%(process)d] %(levelname)s %(message)s")
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise ValueError(f"no such worker group: {', '.join(unknown)}")
    nodes = [
        engine.run_worker(
            group, GROUPS[group], settings.resonate_url, settings.resonate_poll_url,
            claim_ttl_seconds=settings.claim_ttl_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
            timeout_seconds=settings.engine_timeout_seconds,
        )
        for group in groups
    ]
    print(f"worker[{os.getpid()}] serving group {', '.join(map(repr, groups))} from "
          f"{settings.resonate_url}", flush=True)
    return nodes


def drain(nodes: list[engine.Worker], grace_seconds: float) -> bool:
    """Stops taking tasks, lets the held ones finish; returns whether all did."""
    held = sum(node.held_tasks() for node in nodes)
    print(f"worker[{os.getpid()}] stopping: draining {held} task(s)", flush=True)
    for node in nodes:
        node.poller.stop()  # all stop at once, then each waits out the same grace
    drained = all(node.drain(grace_seconds) for node in nodes)
    print(f"worker[{os.getpid()}] stopped ({'drained' if drained else 'tasks handed back'})",
          flush=True)
    return drained
