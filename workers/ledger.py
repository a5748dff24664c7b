"""The effects ledger: one row per real execution of a business step.

Tests read it to prove that nothing ran twice, whatever was killed. A sqlite file (LEDGER_PATH)
that every worker process of the machine appends to.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

DEFAULT_PATH = "data/ledger.sqlite"


def _path() -> str:
    return os.environ.get("LEDGER_PATH", DEFAULT_PATH)


def _connect(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS effects "
        "(step TEXT NOT NULL, key TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL)"
    )
    return connection


def record(ctx: Any, step: str, key: str) -> None:
    """A checkpointed step (run with engine.step): appends one row for this execution."""
    connection = _connect(_path())
    try:
        connection.execute(
            "INSERT INTO effects (step, key, pid, at) VALUES (?, ?, ?, ?)",
            (step, key, os.getpid(), time.time()),
        )
    finally:
        connection.close()


def count(step: str, key: str, path: str | None = None) -> int:
    """How many times `step` really ran for `key`."""
    connection = _connect(path or _path())
    try:
        (total,) = connection.execute(
            "SELECT COUNT(*) FROM effects WHERE step = ? AND key = ?", (step, key)
        ).fetchone()
    finally:
        connection.close()
    return total
