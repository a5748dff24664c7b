"""The peer's Celery app and its one job, `foo` (see the package docstring for the settings)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any

from celery import Celery

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("peer", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_concurrency=1,
    worker_pool="prefork",
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)


def canonical(data: Any) -> str:
    """The one text form of a JSON value (the service's foo uses the same)."""
    return json.dumps(data, sort_keys=True, separators=(", ", ": "))


def record(key: str) -> None:
    """One ledger row per run, written the way the service's workers write theirs."""
    connection = sqlite3.connect(os.environ.get("PEER_LEDGER_PATH", "peer-ledger.sqlite"),
                                 timeout=30, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE IF NOT EXISTS effects "
                           "(step TEXT NOT NULL, key TEXT NOT NULL, pid INTEGER NOT NULL, "
                           "at REAL NOT NULL)")
        connection.execute("INSERT INTO effects (step, key, pid, at) VALUES (?, ?, ?, ?)",
                           ("foo", key, os.getpid(), time.time()))
    finally:
        connection.close()


@app.task(name="foo")
def foo(data: Any) -> dict:
    record(canonical(data))
    return {"result": f"Processed: {canonical(data)}", "timestamp": int(time.time())}
