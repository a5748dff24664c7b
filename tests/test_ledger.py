"""The effects ledger (workers/ledger.py) that every fault test counts on: opening it never fails
because another process is writing to it, even while the file is new."""

from __future__ import annotations

import sqlite3
import threading

from workers import ledger


def test_a_new_ledger_opens_while_another_process_writes_to_it(tmp_path):
    path = tmp_path / "ledger.sqlite"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE effects (step TEXT, key TEXT, pid INTEGER, at REAL)")
    writer.execute("BEGIN IMMEDIATE")  # still in sqlite's first journal mode, writing
    writer.execute("INSERT INTO effects VALUES ('foo', 'a', 1, 0)")
    done = threading.Timer(0.3, writer.execute, ("COMMIT",))
    done.start()
    try:
        assert ledger.count("foo", "a", path) == 1  # waited for the commit, then read its row
    finally:
        done.join()
        writer.close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()
