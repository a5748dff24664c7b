"""Same-process mode: each gunicorn worker process of the gateway also serves the worker groups
named in EMBEDDED_WORKER_GROUPS, so a small deploy is one `gunicorn wsgi:app` process tree and
one Resonate server. gunicorn.conf.py calls `start` after each fork (the runtime's threads do
not survive a fork) and `stop` when the process exits, which drains like `python -m workers`.
"""

from __future__ import annotations

from async_api import engine
from async_api.settings import Settings
from workers import serve

_nodes: list[engine.Worker] = []


def start() -> None:
    settings = Settings.from_env()
    if settings.embedded_worker_groups:
        _nodes.extend(serve.start(settings.embedded_worker_groups, settings))


def stop() -> None:
    if _nodes:
        serve.drain(_nodes, Settings.from_env().worker_grace_seconds)
        _nodes.clear()
