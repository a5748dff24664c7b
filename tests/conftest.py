"""Fixtures that start real processes and always tear them down, and `offline`, the gateway in
the test's own process for checks of request validation.

End-to-end tests run against both stores the Resonate server supports: its sqlite file and
PostgreSQL (a private cluster, started only when a test asks for it).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient

from async_api.contract import GROUPS
from tests.support.in_process import offline_gateway
from tests.support.servers import PostgresCluster
from tests.support.stack import Stack

STORES = ["sqlite", "postgres"]
# A test of what the store does not change (the gateway's HTTP handling, signals, a process's
# own recovery) runs on sqlite alone: a private stack of the default store, or the shared one
# with this mark. Their Postgres runs took 3 of the suite's 15 minutes; what the store does is
# tested on both (test_stores, test_listing, test_timeouts, the restarts of test_faults, an
# outage, and the shared stack's other tests).
SHARED_STACK_ON_SQLITE = pytest.mark.parametrize("stack", ["sqlite"], indirect=True)
# The shared gateway checks webhook signatures with this, gives a quote two seconds (far more
# than a quick one takes, even on a loaded machine, and less than a slow one's five) and holds
# a long-poll at most 5 s (under the tests' 10 s request timeout, whatever a request asks).
GATEWAY_ENV = {"WEBHOOK_SECRET": "test-webhook-secret", "QUOTE_TIMEOUT_SECONDS": "2",
               "LONG_POLL_MAX_SECONDS": "5"}


@pytest.fixture(autouse=True)
def shared_stack_stays_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the shared stack, every process of it is still running: a
    worker or gateway that dies fails the test that killed it, not every later one."""
    yield
    if "stack" not in request.fixturenames:
        return
    shared: Stack = request.getfixturevalue("stack")
    dead = [p for p in shared.started_with if not p.alive()]
    assert not dead, "\n".join(f"{p.name} exited; its log ends:\n{p.log()[-2000:]}"
                                for p in dead)


@pytest.fixture(scope="session")
def offline() -> FlaskClient:
    """The gateway with default settings in this process, no engine: answers in milliseconds
    to requests that fail validation, 503 to any that would reach the engine."""
    return offline_gateway()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def engine_env(request: pytest.FixtureRequest, store: str) -> dict[str, str]:
    """The Resonate server's environment for `store`: a fresh Postgres database, or sqlite."""
    if store == "postgres":
        return {"DATABASE_URL": request.getfixturevalue("postgres").create_database()}
    assert store == "sqlite", store
    return {}


@pytest.fixture(scope="session", params=STORES)
def stack(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Shared by the tests that harm nothing: one server, one worker per group, one gateway."""
    shared = Stack(tmp_path_factory.mktemp(f"stack-{request.param}"),
                   engine_env(request, request.param))
    try:
        shared.start(list(GROUPS), gateway_env=GATEWAY_ENV)
        # What every test may count on; a gateway a test adds and stops itself is its own.
        shared.started_with = [shared.engine, *shared.workers, *shared.gateways]
        yield shared
    finally:
        shared.stop()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    """Runs a test once per store; pass it to make_stack(store=...)."""
    return request.param


@pytest.fixture
def make_stack(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    """A private stack for tests that kill or restart things; the test starts what it needs."""
    created: list[Stack] = []

    def make(store: str = "sqlite") -> Stack:
        private = Stack(tmp_path_factory.mktemp(f"private-{store}"), engine_env(request, store))
        created.append(private)
        return private

    yield make
    for private in created:
        private.stop()


@pytest.fixture
def nonce() -> str:
    """Makes a request body unique to one test, so ledger counts belong to it alone."""
    return uuid.uuid4().hex


def store_rows(stack: Stack, request: pytest.FixtureRequest, sql: str) -> list[tuple[str, ...]]:
    """Runs `sql` on the stack's store, PostgreSQL or sqlite; its rows, each value as text."""
    if stack.database_url:
        output = request.getfixturevalue("postgres").query(stack.database_url, sql)
        return [tuple(line.split("|")) for line in output.splitlines()]
    with sqlite3.connect(stack.sqlite_path) as db:
        return [tuple(str(value) for value in row) for row in db.execute(sql)]
