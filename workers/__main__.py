"""Runs one worker process of a group until SIGTERM or SIGINT."""

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
    engine.run_worker(args.group, GROUPS[args.group], settings.resonate_url,
                      settings.resonate_poll_url)
    print(f"worker[{os.getpid()}] serving group {args.group!r} from {settings.resonate_url}",
          flush=True)
    stop.wait()


if __name__ == "__main__":
    main()
