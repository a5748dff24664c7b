"""Same-process mode: each gunicorn worker process of the gateway also serves the worker groups
named in EMBEDDED_WORKER_GROUPS, so a small deploy is one `gunicorn wsgi:app` process tree and
one Resonate server. gunicorn.conf.py calls `start` after each fork (the runtime's threads do
not survive a fork) and `stop` on SIGTERM and when the process exits, which drains like
`python -m workers`.
"""

from __future__ import annotations

import threading

from async_api import engine
from async_api.settings import Settings
from workers import serve

_nodes: list[engine.Worker] = []
_stopping = threading.Lock()  # one drain: a second `stop` waits for the first to end
# What a drain leaves of gunicorn's graceful timeout to hand back, log and exit.
EXIT_MARGIN_SECONDS = 1.0


def start() -> None:
    settings = Settings.from_env()
    if settings.embedded_worker_groups:
        _nodes.extend(serve.start(settings.embedded_worker_groups, settings))


def stop(graceful_timeout: float) -> None:
    """Drains within WORKER_GRACE_SECONDS and within gunicorn's graceful timeout, counted from
    the call: the master SIGKILLs its workers once that has passed since its SIGTERM, and a
    drain cut there handed nothing back and said nothing. gunicorn.conf.py calls it at the
    SIGTERM, not after the requests in flight end (a slow client held them the whole timeout,
    and meanwhile the process took new tasks: tests/test_embedded.py)."""
    with _stopping:
        if _nodes:
            grace = min(Settings.from_env().worker_grace_seconds,
                        max(0.0, graceful_timeout - EXIT_MARGIN_SECONDS))
            serve.drain(_nodes, grace)
            _nodes.clear()
