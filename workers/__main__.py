"""Runs one worker process of a group until SIGTERM or SIGINT, then drains it.

On the signal the worker stops taking tasks and gives the ones it holds WORKER_GRACE_SECONDS
(default 20) to finish; whatever is still running then is re-delivered to another worker once
its claim expires, so a deploy never loses a job.

With WORKER_METRICS_PORT the process serves its own Prometheus metrics on that port: several
worker processes on one host each need a port of their own (README, "Metrics").
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

from async_api import logs, metrics
from async_api.settings import SettingError, Settings
from workers import ledger, priority, serve
from workers.functions import GROUPS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__)
    parser.add_argument("--group", default=os.environ.get("WORKER_GROUP", "worker"),
                        choices=sorted(GROUPS), help="the worker group to serve")
    args = parser.parse_args(argv)
    if args.group not in GROUPS:  # argparse checks --group's choices, not a default's
        parser.error(f"WORKER_GROUP must be one of {', '.join(sorted(GROUPS))}, "
                     f"not {args.group!r}")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    try:
        logs.setup()
        settings = Settings.from_env()
        ledger.check()
    except SettingError as exc:
        parser.exit(2, f"python -m workers: {exc}\n")
    priority.give_way(settings.worker_nice)
    if settings.worker_metrics_port:
        metrics.serve(settings.worker_metrics_port)
    nodes = serve.start([args.group], settings)
    stop.wait()
    serve.drain(nodes, settings.worker_grace_seconds)


if __name__ == "__main__":
    main()
