"""The Resonate server keeps state in its sqlite file or, with DATABASE_URL, in PostgreSQL."""

from __future__ import annotations

import importlib.util
import math
import os
import pty
import sqlite3
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import store_rows
from tests.support.make_run import start_make_run
from tests.support.processes import ROOT, free_port, wait_until
from tests.support.stack import Stack

_spec = importlib.util.spec_from_file_location("postgres_flags",
                                               ROOT / "scripts" / "postgres-flags.py")
postgres_flags = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(postgres_flags)


def test_database_url_becomes_server_flags_without_the_password():
    flags = postgres_flags.postgres_flags("postgres://app:s%40cret@db.internal:6543/jobs")

    assert flags == [
        "--aio-store-sqlite-enable=false", "--aio-store-postgres-enable",
        "--aio-store-postgres-host=db.internal", "--aio-store-postgres-port=6543",
        "--aio-store-postgres-database=jobs", "--aio-store-postgres-username=app",
    ]  # a remote host keeps the driver's default sslmode (require)
    assert postgres_flags.password("postgres://app:s%40cret@db.internal:6543/jobs") == "s@cret"


def test_database_url_query_and_loopback_sslmode():
    local = postgres_flags.postgres_flags("postgresql://app@localhost/jobs")
    assert local[-1] == "--aio-store-postgres-query=sslmode=disable"
    assert "--aio-store-postgres-port=5432" in local

    remote = postgres_flags.postgres_flags("postgres://h/db?sslmode=verify-full&connect_timeout=3")
    assert remote[-1] == "--aio-store-postgres-query=sslmode=verify-full,connect_timeout=3"


@pytest.mark.parametrize("url", ["postgres://r:s@127.0.0.1:abc/r",
                                 "postgres://r:se/cret@127.0.0.1/r"])  # "/" not escaped
def test_a_database_url_that_cannot_be_read_is_one_line_not_a_traceback(url):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "postgres-flags.py")],
                          env={**os.environ, "DATABASE_URL": url},
                          capture_output=True, text=True, timeout=10)

    assert done.returncode == 1
    assert done.stderr.startswith("DATABASE_URL cannot be read: its port is no number")
    assert "Traceback" not in done.stderr
    assert "cret" not in done.stderr  # urllib's message quoted a part of the password


def test_a_database_url_without_its_password_stops_the_server_at_once(postgres, tmp_path):
    """psql, laying the schema, asked for the password the URL lacks on the terminal: `make run`
    started from one waited there for good, its server never listening and nothing said why."""
    url = postgres.create_database().replace(f":{postgres.password}@", "@")
    addresses = {name: f"127.0.0.1:{free_port()}" for name in (
        "RESONATE_HTTP_ADDR", "RESONATE_POLL_ADDR", "RESONATE_GRPC_ADDR", "RESONATE_METRICS_ADDR")}
    primary, terminal = pty.openpty()
    serve = subprocess.Popen(  # on a terminal of its own, which psql's prompt opens
        [str(ROOT / "scripts" / "resonate-serve")], stdin=terminal, stdout=terminal,
        stderr=terminal, preexec_fn=lambda: os.login_tty(0),  # stdin: the terminal
        env={**os.environ, **addresses, "DATABASE_URL": url,
             "RESONATE_DATA_DIR": str(tmp_path)})
    os.close(terminal)
    try:
        assert serve.wait(timeout=15) != 0
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, 9)
            serve.wait()
        said = _read_all(primary)
    assert "no password supplied" in said, said


def _read_all(primary: int) -> str:
    """What a process wrote to its terminal, read from the pty's primary side once it is gone."""
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # EIO: no process holds the terminal side any more
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    return b"".join(chunks).decode(errors="replace")


def test_the_stack_keeps_promises_in_its_store(stack, nonce, request):
    job_id = f"stored-{nonce}"
    assert stack.begin(job_id, {"nonce": nonce}).status_code == 202
    stack.wait_settled(job_id)

    rows = store_rows(stack, request, f"SELECT state FROM promises WHERE id = '{job_id}'")
    assert rows == [("2",)]  # RESOLVED in the server's bit-flag encoding
    if stack.database_url:
        assert not stack.sqlite_path.exists()


def test_a_settled_job_leaves_no_task_behind(make_stack, store, nonce, request):
    """Settling a root completes its claimed task on the server (patch 0006), so the worker
    makes no task-completion call of its own and no task of the job stays claimed."""
    stack = make_stack(store)
    stack.start(["worker"])
    job_ids = [f"tasks-{nonce}-{n}" for n in range(3)]
    for job_id in job_ids:
        assert stack.begin(job_id, {"nonce": nonce}).status_code == 202
    for job_id in job_ids:
        stack.wait_settled(job_id)

    rows = store_rows(stack, request,
                      "SELECT root_promise_id, state FROM tasks ORDER BY root_promise_id")
    assert rows == [(job_id, "8") for job_id in job_ids]  # 8: COMPLETED
    assert stack.engine.requests_answered("CompleteTask") == 0
    assert stack.engine.requests_answered("CompletePromise") > 0  # the counter is read


def test_one_job_at_a_time_costs_two_task_enqueue_runs_each(make_stack, store, nonce):
    """The server sends a job's task in the EnqueueTasks run its create wakes, and runs it
    once more after the job's completion (which may unblock a task); a run that read every
    enqueueable task is followed by no other (patch 0009; unpatched, 3 runs a job). The
    periodic run (RESONATE_SIGNAL_TIMEOUT, 1 s) adds at most one a second."""
    stack = make_stack(store)
    stack.start(["worker"])
    jobs = 10
    assert stack.begin(f"enq-{nonce}-warm", {"nonce": nonce}).status_code == 202
    stack.wait_settled(f"enq-{nonce}-warm")
    time.sleep(0.3)  # the warm-up job's runs are over
    before, started = stack.engine.coroutines_run("EnqueueTasks"), time.monotonic()
    for n in range(jobs):
        assert stack.begin(f"enq-{nonce}-{n}", {"nonce": nonce}).status_code == 202
        stack.wait_settled(f"enq-{nonce}-{n}")
    time.sleep(0.3)  # a run following the last one would come 2 ms after it
    periodic = math.ceil(time.monotonic() - started) + 1
    runs = stack.engine.coroutines_run("EnqueueTasks") - before
    assert 2 * jobs <= runs <= 2 * jobs + periodic, runs


def test_jobs_waiting_for_a_group_with_no_worker_hold_up_no_other_group(make_stack, store, nonce):
    """150 await-chain jobs wait for group business, which has no worker yet: more than the
    100 tasks the server reads at a time. A job of group worker whose id sorts after theirs
    still runs at once (patch 0010; before, every read took the same 100 waiting tasks, and it
    stayed pending). Once business and db workers start, the waiting jobs run too."""
    stack = make_stack(store)
    stack.start(["worker"])
    waiting = [f"a-{nonce}-{n:03d}" for n in range(150)]
    for job_id in waiting:
        assert stack.post("/await-chain", {}, params={"id": job_id}).status_code == 202
    late = f"z-{nonce}"
    assert stack.begin(late, {"nonce": nonce}).status_code == 202
    assert stack.wait_settled(late, timeout=10)["status"] == "resolved"

    stack.start_worker("business")
    stack.start_worker("db")
    for job_id in waiting:
        assert stack.wait_settled(job_id, timeout=60)["status"] == "resolved", job_id


ENQUEUE_INDEX = "idx_tasks_state_root_promise_id_expires_at"
NARROWER_INDEX = "idx_tasks_state_root_promise_id"  # before patch 0011


def test_the_tasks_index_the_enqueue_query_walks_holds_expires_at(make_stack, store, request):
    """Patch 0011 (and postgres-schema.sql): the index ends with expires_at, so the tasks not
    yet due are passed over in it; a store made with the narrower index loses it on the
    server's next start."""
    stack = make_stack(store)
    stack.engine.start()
    tasks_indexes = ("SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'"
                     if stack.database_url else
                     "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks'")

    def indexes() -> set[str]:
        return {name for (name,) in store_rows(stack, request, tasks_indexes)}

    assert ENQUEUE_INDEX in indexes() and NARROWER_INDEX not in indexes()
    stack.engine.stop()
    store_rows(stack, request,
               f"CREATE INDEX {NARROWER_INDEX} ON tasks(state, root_promise_id, id)")
    assert NARROWER_INDEX in indexes()
    stack.engine.start()
    assert ENQUEUE_INDEX in indexes() and NARROWER_INDEX not in indexes()


def test_the_statements_kept_between_transactions_leave_the_wal_free(make_stack, nonce):
    """Patch 0012 keeps the sqlite store's statements prepared from one transaction to the
    next. One left unreset after its last use would keep a read transaction open, and the WAL
    could never start over: it would grow for as long as the server ran. After jobs that make
    every kind of call a job makes (create, claim, heartbeat, settle, read, the task queue's
    reads, a search), another connection can still empty the WAL, which needs no reader."""
    stack = make_stack("sqlite")
    stack.start(["worker"])
    job_ids = [f"wal-{nonce}-{n}" for n in range(5)]
    for job_id in job_ids:
        assert stack.begin(job_id, {"nonce": nonce, "work": 2.5}).status_code == 202
    for job_id in job_ids:  # a step of 2.5 s holds its task past a heartbeat (every 2 s)
        assert stack.wait_settled(job_id)["status"] == "resolved"
    assert set(job_ids) <= set(stack.listed("resolved"))  # a search of the store

    with sqlite3.connect(stack.sqlite_path, timeout=5) as db:  # waits out a read in flight
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    assert stack.sqlite_path.with_name(stack.sqlite_path.name + "-wal").stat().st_size == 0


def test_a_job_begun_while_its_group_has_no_worker_starts_soon_after_one_connects(tmp_path, nonce):
    """With `make run`'s 10 s task enqueue delay, a task whose send found no worker is tried
    again after half its age (patch 0010), so its job starts within a few seconds of a worker
    connecting (after a server restart, the workers reconnect within a second), not 10 s
    after its begin as upstream's re-send delay would have it."""
    stack = Stack(tmp_path, {"RESONATE_TASK_ENQUEUE_DELAY": "10s"})
    try:
        stack.start([])
        job_id = f"no-worker-yet-{nonce}"
        assert stack.begin(job_id, {"nonce": nonce}).status_code == 202
        time.sleep(1)  # its send has failed by now
        stack.start_worker("worker")
        connected = time.monotonic()
        assert stack.wait_settled(job_id, timeout=30)["status"] == "resolved"
        assert time.monotonic() - connected < 5  # upstream's delay: about 9 s
    finally:
        stack.stop()


def test_make_run_with_database_url_stores_in_postgres(postgres, tmp_path, nonce):
    """`make run DATABASE_URL=...`: the variable reaches the server through make and
    supervisord."""
    database_url = postgres.create_database()
    service, gateway = start_make_run(tmp_path, f"DATABASE_URL={database_url}")
    try:
        job_id = f"make-run-{nonce}"
        assert requests.post(f"{gateway}/begin", params={"id": job_id}, timeout=10).ok
        wait_until(lambda: requests.get(f"{gateway}/wait", params={"id": job_id},
                                        timeout=5).json()["status"] == "resolved",
                   30, "the job to resolve")
    finally:
        service.stop(group=True)
    assert postgres.query(database_url, f"SELECT COUNT(*) FROM promises WHERE id = '{job_id}'") \
        == "1"
    assert not (tmp_path / "data" / "resonate.db").exists()
