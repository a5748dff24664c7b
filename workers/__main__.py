"""Runs one worker process of a group until SIGTERM or SIGINT, then drains it.

On the signal the worker stops taking tasks and gives the ones it holds WORKER_GRACE_SECONDS
(default 20) to finish; whatever is still running then is re-delivered to another worker once
its claim expires, so a deploy never loses a job.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

from async_api import engine
from async_api.settings import Settings
from workers.functions import GROUPS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("--group", default=os.environ.get("WORKER_GROUP", "worker"),
                        choices=sorted(GROUPS), help="the worker group to serve")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"),
                        format="%(asctime)s worker[%(process)d] %(levelname)s %(message)s")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    settings = Settings.from_env()
    worker = engine.run_worker(
        args.group, GROUPS[args.group], settings.resonate_url, settings.resonate_poll_url,
        claim_ttl_seconds=settings.claim_ttl_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        timeout_seconds=settings.engine_timeout_seconds,
    )
    print(f"worker[{os.getpid()}] serving group {args.group!r} from {settings.resonate_url}",
          flush=True)
    stop.wait()
    held = worker.held_tasks()
    print(f"worker[{os.getpid()}] stopping: draining {held} task(s)", flush=True)
    drained = worker.drain(settings.worker_grace_seconds)
    print(f"worker[{os.getpid()}] stopped ({'drained' if drained else 'tasks handed back'})",
          flush=True)


if __name__ == "__main__":
    main()
