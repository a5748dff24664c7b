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

from async_api.settings import SettingError

DEFAULT_PATH = "data/ledger.sqlite"


def _path() -> str:
    return os.environ.get("LEDGER_PATH", DEFAULT_PATH)


BUSY_SECONDS = 30  # how long a connection waits for another process's lock


def _connect(path: str | Path) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
    _use_wal(connection)
    connection.execute(
        "CREATE TABLE IF NOT EXISTS effects "
        "(step TEXT NOT NULL, key TEXT NOT NULL, pid INTEGER NOT NULL, at REAL NOT NULL)"
    )
    return connection


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switches a new ledger file to WAL once (the mode stays in the file). The switch needs the
    file to itself, and sqlite answers "database is locked" at once, without waiting, while
    another process writes to it (test_ledger.py): so it is retried until the other is done."""
    deadline = time.monotonic() + BUSY_SECONDS
    while connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            if connection.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                return
        except sqlite3.OperationalError:
            pass
        if time.monotonic() > deadline:  # also when sqlite keeps its mode without an error
            raise sqlite3.OperationalError(
                f"the ledger could not be switched to WAL mode in {BUSY_SECONDS} s")
        time.sleep(0.01)


def _append(step: str, key: str) -> None:
    connection = _connect(_path())
    try:
        connection.execute(
            "INSERT INTO effects (step, key, pid, at) VALUES (?, ?, ?, ?)",
            (step, key, os.getpid(), time.time()),
        )
    finally:
        connection.close()


def check() -> None:
    """Opens (or makes) the ledger once, so that a LEDGER_PATH no step could write stops the
    worker at start (SettingError) rather than failing every step, which the SDK retries for
    ever."""
    try:
        _connect(_path()).close()
    except (OSError, sqlite3.Error) as exc:
        raise SettingError(f"LEDGER_PATH: cannot open {_path()!r} ({exc})") from exc


def record(ctx: Any, step: str, key: str, work_seconds: float = 0) -> None:
    """A checkpointed step (run with engine.step): appends one row for this execution.

    With `work_seconds` the step first marks `<step>:started`, then blocks that long while its
    worker holds the task, and only then appends its row: the row counts *completed*
    executions, so a worker killed mid-step leaves a start mark and no row.
    """
    if work_seconds > 0:
        _append(f"{step}:started", key)
        time.sleep(work_seconds)
    _append(step, key)


def count(step: str, key: str, path: str | Path) -> int:
    """How many times `step` really ran for `key`, in the ledger at `path`."""
    connection = _connect(path)
    try:
        (total,) = connection.execute(
            "SELECT COUNT(*) FROM effects WHERE step = ? AND key = ?", (step, key)
        ).fetchone()
    finally:
        connection.close()
    return total


def started_since(step: str, key: str, since: float, path: str | Path) -> int:
    """How many executions of `step` for `key` began at or after `since` (a time.time())."""
    connection = _connect(path)
    try:
        (total,) = connection.execute(
            "SELECT COUNT(*) FROM effects WHERE step = ? AND key = ? AND at >= ?",
            (f"{step}:started", key, since),
        ).fetchone()
    finally:
        connection.close()
    return total


def rows(step: str, path: str | Path) -> list[tuple[str, int]]:
    """(key, pid) of every execution of `step` in the ledger at `path`, oldest first."""
    connection = _connect(path)
    try:
        return connection.execute(
            "SELECT key, pid FROM effects WHERE step = ? ORDER BY at", (step,)
        ).fetchall()
    finally:
        connection.close()
