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


def raising(error: type[Exception], message: str) -> Callable[..., Any]:
    """A durable function that runs a step, then raises `error(message)` ({key} filled in)."""
    def child(ctx: Any, key: str) -> Any:
        yield engine.step(ctx, _record, f"{key}:child")
        raise error(message.format(key=key))
    return child


CHILDREN = {"raises_no_invoice": raising(NoInvoice, "no invoice for {key}"),
            "raises_value_error": raising(ValueError, "no price for {key}"),
            "raises_unbuildable": raising(Unbuildable, "card declined for {key}"),
            "raises_foreign": raising(Foreign, "unknown account {key}")}
for name, child in CHILDREN.items():  # the worker registers a function by its name
    child.__name__ = child.__qualname__ = name
CALLED = {name: DurableFunction(name, GROUP) for name in CHILDREN}


def returns_from_except(ctx: Any, key: str, child: str) -> Any:
    try:
        yield engine.call(ctx, CALLED[child], key)
    except Exception as exc:  # what the workflow saw is its result
        return {"recovered": type(exc).__name__, "message": str(exc),
                "code": getattr(exc, "code", None)}
    return {"recovered": None}


def steps_in_except(ctx: Any, key: str, child: str) -> Any:
    try:
        yield engine.call(ctx, CALLED[child], key)
    except NoInvoice as exc:
        done = yield engine.step(ctx, _record, f"{key}:fallback")
        return {"fallback": done, "message": str(exc)}
    return {"fallback": None}


def raises_another_in_except(ctx: Any, key: str, child: str) -> Any:
    try:
        yield engine.call(ctx, CALLED[child], key)
    except NoInvoice as exc:
        raise RuntimeError(f"wrapped: {exc}") from exc


def does_not_catch(ctx: Any, key: str, child: str) -> Any:
    yield engine.call(ctx, CALLED[child], key)
    return {"unreachable": True}


@pytest.fixture
def worker_engine(make_stack: Callable[..., Stack]) -> Iterator[Engine]:
    """A server, and this process serving GROUP with the functions above."""
    server = make_stack().engine.start()
    nodes = engine.run_worker(GROUP, [*CHILDREN.values(), returns_from_except, steps_in_except,
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


# What a workflow ends with, by (workflow, the child it calls): the key is the job's id.
OUTCOMES = {
    # SDK 0.4.10's ResonateCoro._throw replaced what the generator returned from its except
    # block with the error it had caught: the job ended rejected with the child's error
    "returning from except resolves": ("returns_from_except", "raises_no_invoice", "resolved",
                                       lambda key: {"recovered": "NoInvoice", "code": None,
                                                    "message": f"no invoice for {key}"}),
    "raising in except rejects with its own error": (
        "raises_another_in_except", "raises_no_invoice", "rejected",
        lambda key: {"type": "RuntimeError", "message": f"wrapped: no invoice for {key}"}),
    # the SDK rebuilt ValueError("why") from its __dict__ alone: the caller saw ValueError()
    "a caught error keeps its message": ("returns_from_except", "raises_value_error", "resolved",
                                         lambda key: {"recovered": "ValueError", "code": None,
                                                      "message": f"no price for {key}"}),
    # SDK 0.4.10 decodes an error as cls(**attributes): Unbuildable(code=402) raised TypeError
    # in the caller's worker, which dropped the run at every claim; the job stayed pending
    "an error not rebuildable from its attributes is caught as itself": (
        "returns_from_except", "raises_unbuildable", "resolved",
        lambda key: {"recovered": "Unbuildable", "message": f"card declined for {key}",
                     "code": 402}),
    "an error of a class the caller cannot import is caught as ChildFailed": (
        "returns_from_except", "raises_foreign", "resolved",
        lambda key: {"recovered": "ChildFailed", "message": f"unknown account {key}",
                     "code": None}),
    "an error of a class the caller cannot import rejects the caller as it": (
        "does_not_catch", "raises_foreign", "rejected",
        lambda key: {"type": "Foreign", "message": f"unknown account {key}"}),
}


@pytest.mark.parametrize("case", OUTCOMES)
def test_a_workflow_ends_with_what_it_made_of_its_childs_error(worker_engine, case):
    function, child, state, value = OUTCOMES[case]
    key = uuid.uuid4().hex
    job = settled(worker_engine, function, key, child)
    assert (job.state, job.value) == (state, value(key))


def test_a_workflow_stepping_in_except_resolves(worker_engine):
    key = uuid.uuid4().hex
    job = settled(worker_engine, "steps_in_except", key, "raises_no_invoice")
    assert job.state == "resolved", job.value
    assert job.value == {"fallback": f"{key}:fallback", "message": f"no invoice for {key}"}
    assert runs.count(f"{key}:fallback") == 1


def test_an_error_not_rebuildable_from_its_attributes_rejects_the_caller_once(worker_engine):
    key = uuid.uuid4().hex
    job = settled(worker_engine, "does_not_catch", key, "raises_unbuildable")
    assert job.state == "rejected"
    assert job.value == {"type": "Unbuildable", "message": f"card declined for {key}",
                         "code": 402}
    time.sleep(3)  # more than a claim ttl: a dropped run would have replayed (its child's step too)
    assert runs.count(f"{key}:child") == 1
