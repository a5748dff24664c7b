"""`make bench-scale`: what a request costs as the store grows (sqlite, or PostgreSQL).

For each size: one stack (tests/support/stack.py) runs one real job; the server is stopped, and
the job's rows (its promise, its step's promise, its task) are copied `size` times straight into
the sqlite file, as if that many jobs had run; the server starts again on the same file. Then,
one request at a time: POST /begin (a new job each); once those jobs have settled, GET /wait
on each (read once: the gateway asks the server), GET /jobs/ID on each (the detailed view: it
also looks up the job's progress, a search among its children), GET /jobs (first page of 20)
and GET /jobs?state=rejected (a filter that matches none of the copies, the worst case: the
listing reads every page it may); GET /jobs as a principal that started none of them (auth on:
the engine filters by owner); and the server's CPU with nothing to do, which its periodic
scans of the store cost.

  .venv/bin/python -m bench.scale                  sizes 0, 100000 and 1000000
  .venv/bin/python -m bench.scale --sizes 0,10000
  .venv/bin/python -m bench.scale --store postgres --sizes 0,100000
                                                   (a private cluster as the tests start it:
                                                   fsync off, so it measures queries, not disks)
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench import procs
from bench.report import grid
from tests.support.processes import wait_until
from tests.support.servers import PostgresCluster
from tests.support.stack import Stack

REQUESTS = 50  # per measured route and size
TEMPLATE = "template"
# The columns a copy takes from the template's rows (all but the id, the sort id, the root).
PROMISE_COLUMNS = ("state, param_headers, param_data, value_headers, value_data, timeout, "
                   "idempotency_key_for_create, idempotency_key_for_complete, tags, "
                   "created_on, completed_on")
TASK_COLUMNS = ("process_id, state, recv, mesg, timeout, counter, attempt, ttl, expires_at, "
                "created_on, completed_on")


def seed(database: Path, size: int) -> None:
    """`size` copies of the template job's rows: promises `job-N` and `job-N.1`, and a
    completed task for each, in one transaction."""
    with sqlite3.connect(database) as db:
        numbers = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                   f"WHERE i < {size}) ")
        copies = " UNION ALL ".join(  # a job, then its step: as they are created
            f"SELECT 'job-' || i || '{suffix}' AS id, i AS job, {order} AS step, {PROMISE_COLUMNS} "
            f"FROM n, promises WHERE promises.id = '{TEMPLATE}{suffix}'"
            for order, suffix in enumerate(("", ".1")))
        db.execute(f"{numbers}INSERT INTO promises (id, {PROMISE_COLUMNS}) "
                   f"SELECT id, {PROMISE_COLUMNS} FROM ({copies}) ORDER BY job, step")
        db.execute(
            f"{numbers}INSERT INTO tasks (root_promise_id, {TASK_COLUMNS}) "
            f"SELECT 'job-' || i, {TASK_COLUMNS} FROM n, tasks "
            f"WHERE tasks.root_promise_id = '{TEMPLATE}'")


def seed_postgres(cluster: PostgresCluster, database_url: str, size: int) -> None:
    """seed() for PostgreSQL."""
    cluster.query(database_url, f"""
        INSERT INTO promises (id, {PROMISE_COLUMNS})
        SELECT 'job-' || i || copy.suffix, {PROMISE_COLUMNS}
        FROM generate_series(1, {size}) AS i
        CROSS JOIN (VALUES ('', 0), ('.1', 1)) AS copy(suffix, step)
        JOIN promises ON promises.id = '{TEMPLATE}' || copy.suffix
        ORDER BY i, copy.step;
        INSERT INTO tasks (root_promise_id, {TASK_COLUMNS})
        SELECT 'job-' || i, {TASK_COLUMNS}
        FROM generate_series(1, {size}) AS i, tasks WHERE tasks.root_promise_id = '{TEMPLATE}';
        ANALYZE""")


def p50_ms(send: callable, count: int = REQUESTS) -> float:
    times = []
    for n in range(count):
        started = time.perf_counter()
        answer = send(n)
        times.append(time.perf_counter() - started)
        assert answer.status_code < 300, answer.text
    return statistics.median(times) * 1000


def measure(size: int, directory: Path, cluster: PostgresCluster | None) -> dict[str, float]:
    directory.mkdir(parents=True)
    database_url = cluster.create_database() if cluster else ""
    stack = Stack(directory, {"RESONATE_TASK_ENQUEUE_DELAY": "",
                              **({"DATABASE_URL": database_url} if cluster else {})})
    stack.start(["worker"], gateway_env={"WEB_CONCURRENCY": "2"})
    try:
        assert stack.begin(TEMPLATE, {"foo": "bar"}).status_code == 202
        stack.wait_settled(TEMPLATE)
        if size:
            stack.engine.stop()
            if cluster:
                seed_postgres(cluster, database_url, size)
            else:
                seed(stack.sqlite_path, size)
            stack.engine.start()
            wait_until(lambda: requests.get(f"{stack.gateway_url}/readyz", timeout=5).ok, 60,
                       "the server to answer again")
        url, session = stack.gateway_url, requests.Session()
        # A second gateway with auth on: a principal's listing shows only the jobs it started
        # (the engine filters by the tag async-api:owner), here none of the copies.
        principal = stack.start_gateway({"API_TOKENS": "alice:tokA"}, workers=1).url
        row = {"begin": p50_ms(lambda n: session.post(
            f"{url}/begin", params={"id": f"new-{n}"}, json={"n": n}, timeout=30))}
        # Settled before they are read: after the server's restart the worker reconnects
        # first, and a job still running would add its progress lookup to a listed page.
        for n in range(REQUESTS):
            stack.wait_settled(f"new-{n}")
        row |= {
            "wait": p50_ms(lambda n: session.get(f"{url}/wait", params={"id": f"new-{n}"},
                                                 timeout=30)),
            "job": p50_ms(lambda n: session.get(f"{url}/jobs/new-{n}", timeout=30)),
            "list": p50_ms(lambda n: session.get(f"{url}/jobs", params={"limit": 20},
                                                 timeout=30)),
            "list rejected": p50_ms(lambda n: session.get(
                f"{url}/jobs", params={"limit": 20, "state": "rejected"}, timeout=30), 10),
            "list as principal": p50_ms(lambda n: session.get(
                f"{principal}/jobs", params={"limit": 20}, timeout=30,
                headers={"Authorization": "Bearer tokA"}), 10),
        }
        time.sleep(2)
        roots = {"server": stack.engine.pid}
        before = procs.snapshot(roots)
        time.sleep(10)
        seconds, _ = procs.used(before, procs.snapshot(roots))["server"]
        row["idle server CPU %"] = seconds / 10 * 100
        return row
    finally:
        stack.stop()


def main() -> None:
    # On SIGTERM, as on Ctrl-C, the `finally`s stop the stack and the cluster (they were left
    # running, each process in a session of its own).
    procs.exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.scale",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,100000,1000000")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = {}
    cluster = PostgresCluster().start() if args.store == "postgres" else None
    try:
        with tempfile.TemporaryDirectory(prefix="async-api-scale-") as tmp:
            for size in sizes:
                print(f"bench.scale: {size} jobs stored ({args.store})", flush=True)
                rows[size] = measure(size, Path(tmp) / str(size), cluster)
    finally:
        if cluster:
            cluster.stop()
    metrics = list(next(iter(rows.values())))
    header = ["jobs stored", *[f"{m} p50 ms" if "CPU" not in m else m for m in metrics]]
    body = [[f"{size:,}", *[f"{row[m]:.1f}" for m in metrics]] for size, row in rows.items()]
    print(grid(header, body))
    if 0 in rows:
        for size, row in rows.items():
            if size:
                print(f"{size:,} jobs / empty: " + ", ".join(
                    f"{m} {row[m] / rows[0][m]:.2f}x" for m in metrics if rows[0][m]))


if __name__ == "__main__":
    main()
