"""A workflow sees what a durable function it calls raised, as an error it can catch: a worker of
this test's own functions (run_worker, in this process) on a real Resonate server."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from async_api import engine
from async_api.contract import DurableFunction
from async_api.engine import Engine, Promise
from tests.support.processes import wait_until
from tests.support.stack import Stack

GROUP = "errors"
runs: list[str] = []  # the effects of the steps below, one entry per run


def _record(ctx: Any, key: str) -> str:
    runs.append(key)
    return key


class NoInvoice(Exception):
    """An error the SDK rebuilds as it stored it: NoInvoice(message=...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def raises_no_invoice(ctx: Any, key: str) -> Any:
    yield engine.step(ctx, _record, f"{key}:child")
    raise NoInvoice(f"no invoice for {key}")


CHILDREN = {function.__name__: DurableFunction(function.__name__, GROUP)
            for function in (raises_no_invoice,)}


def returns_from_except(ctx: Any, key: str, child: str) -> Any:
    try:
        yield engine.call(ctx, CHILDREN[child], key)
    except Exception as exc:  # what the workflow saw is its result
        return {"recovered": type(exc).__name__, "message": str(exc),
                "code": getattr(exc, "code", None)}
    return {"recovered": None}


def steps_in_except(ctx: Any, key: str, child: str) -> Any:
    try:
        yield engine.call(ctx, CHILDREN[child], key)
    except NoInvoice as exc:
        done = yield engine.step(ctx, _record, f"{key}:fallback")
        return {"fallback": done, "message": str(exc)}
    return {"fallback": None}


def raises_another_in_except(ctx: Any, key: str, child: str) -> Any:
    try:
        yield engine.call(ctx, CHILDREN[child], key)
    except NoInvoice as exc:
        raise RuntimeError(f"wrapped: {exc}") from exc


@pytest.fixture
def worker_engine(make_stack: Callable[..., Stack]) -> Iterator[Engine]:
    """A server, and this process serving GROUP with the functions above."""
    server = make_stack().engine.start()
    nodes = engine.run_worker(GROUP, [raises_no_invoice,
                                      returns_from_except, steps_in_except,
                                      raises_another_in_except],
                              server.url, server.poll_url, claim_ttl_seconds=2,
                              heartbeat_seconds=0.5)
    try:
        yield Engine(server.url, 5)
    finally:
        for node in nodes:
            node.drain(1)


def settled(client: Engine, function: str, key: str, child: str) -> Promise:
    client.invoke(key, function, [key, child], group=GROUP, timeout_seconds=60)
    return wait_until(lambda: (job := client.get(key)).pending is False and job, 15,
                      f"{function} to settle")


# --- bug A: a workflow that catches a child's error recovers ---------------------------------


def test_a_workflow_returning_from_except_resolves(worker_engine):
    """SDK 0.4.10's ResonateCoro._throw replaced what the generator returned from its except
    block with the error it had caught: the job ended rejected with the child's error."""
    key = uuid.uuid4().hex
    job = settled(worker_engine, "returns_from_except", key, "raises_no_invoice")
    assert job.state == "resolved", job.value
    assert job.value == {"recovered": "NoInvoice", "message": f"no invoice for {key}",
                         "code": None}


def test_a_workflow_stepping_in_except_resolves(worker_engine):
    key = uuid.uuid4().hex
    job = settled(worker_engine, "steps_in_except", key, "raises_no_invoice")
    assert job.state == "resolved", job.value
    assert job.value == {"fallback": f"{key}:fallback", "message": f"no invoice for {key}"}
    assert runs.count(f"{key}:fallback") == 1


def test_a_workflow_raising_in_except_rejects_with_its_own_error(worker_engine):
    key = uuid.uuid4().hex
    job = settled(worker_engine, "raises_another_in_except", key, "raises_no_invoice")
    assert job.state == "rejected"
    assert job.value == {"type": "RuntimeError", "message": f"wrapped: no invoice for {key}"}

