"""A workflow sees what a durable function it calls raised, as an error it can catch: a worker of
this test's own functions (run_worker, in this process) on a real Resonate server."""

from __future__ import annotations

import time
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


class Unbuildable(Exception):
    """Its class cannot be rebuilt from its stored attributes: Unbuildable(code=402) fails."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.code = 402


class Foreign(Exception):
    """Defined in a module the calling workflow's worker does not have."""


Foreign.__module__ = "billing_only.errors"


def raises_no_invoice(ctx: Any, key: str) -> Any:
    yield engine.step(ctx, _record, f"{key}:child")
    raise NoInvoice(f"no invoice for {key}")


def raises_value_error(ctx: Any, key: str) -> Any:
    yield engine.step(ctx, _record, f"{key}:child")
    raise ValueError(f"no price for {key}")


def raises_unbuildable(ctx: Any, key: str) -> Any:
    yield engine.step(ctx, _record, f"{key}:child")
    raise Unbuildable(f"card declined for {key}")


def raises_foreign(ctx: Any, key: str) -> Any:
    yield engine.step(ctx, _record, f"{key}:child")
    raise Foreign(f"unknown account {key}")


CHILDREN = {function.__name__: DurableFunction(function.__name__, GROUP)
            for function in (raises_no_invoice, raises_value_error, raises_unbuildable,
                         raises_foreign)}


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


def does_not_catch(ctx: Any, key: str, child: str) -> Any:
    yield engine.call(ctx, CHILDREN[child], key)
    return {"unreachable": True}


@pytest.fixture
def worker_engine(make_stack: Callable[..., Stack]) -> Iterator[Engine]:
    """A server, and this process serving GROUP with the functions above."""
    server = make_stack().engine.start()
    nodes = engine.run_worker(GROUP, [raises_no_invoice, raises_value_error, raises_unbuildable,
                                      raises_foreign,
                                      returns_from_except, steps_in_except,
                                      raises_another_in_except, does_not_catch],
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


# --- bug B: an error the caller's worker cannot rebuild as stored ------------------------------


def test_a_caught_error_keeps_its_message(worker_engine):
    """The SDK rebuilt ValueError("why") from its __dict__ alone: the caller saw ValueError()."""
    key = uuid.uuid4().hex
    job = settled(worker_engine, "returns_from_except", key, "raises_value_error")
    assert job.state == "resolved", job.value
    assert job.value == {"recovered": "ValueError", "message": f"no price for {key}",
                         "code": None}


def test_an_error_not_rebuildable_from_its_attributes_is_caught_as_itself(worker_engine):
    """SDK 0.4.10 decodes an error as cls(**attributes): Unbuildable(code=402) raised TypeError
    in the caller's worker, which dropped the run at every claim; the job stayed pending."""
    key = uuid.uuid4().hex
    job = settled(worker_engine, "returns_from_except", key, "raises_unbuildable")
    assert job.state == "resolved", job.value
    assert job.value == {"recovered": "Unbuildable", "message": f"card declined for {key}",
                         "code": 402}


def test_an_error_not_rebuildable_from_its_attributes_rejects_the_caller(worker_engine):
    key = uuid.uuid4().hex
    job = settled(worker_engine, "does_not_catch", key, "raises_unbuildable")
    assert job.state == "rejected"
    assert job.value == {"type": "Unbuildable", "message": f"card declined for {key}",
                         "code": 402}
    time.sleep(3)  # more than a claim ttl: a dropped run would have replayed (its child's step too)
    assert runs.count(f"{key}:child") == 1


def test_an_error_of_a_class_the_caller_cannot_import_is_caught_as_child_failed(worker_engine):
    key = uuid.uuid4().hex
    job = settled(worker_engine, "returns_from_except", key, "raises_foreign")
    assert job.state == "resolved", job.value
    assert job.value == {"recovered": "ChildFailed", "message": f"unknown account {key}",
                         "code": None}


def test_an_error_of_a_class_the_caller_cannot_import_rejects_the_caller_as_it(worker_engine):
    key = uuid.uuid4().hex
    job = settled(worker_engine, "does_not_catch", key, "raises_foreign")
    assert job.state == "rejected"
    assert job.value == {"type": "Foreign", "message": f"unknown account {key}"}
