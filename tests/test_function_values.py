"""What a durable function returns or raises reaches its job as the function gave it, or as a
readable rejection: a worker of this test's own functions (run_worker, in this process) on a
real Resonate server."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from async_api import engine
from async_api.engine import Engine, Promise
from tests.support.processes import wait_until
from tests.support.stack import Stack

GROUP = "values"
runs: list[str] = []  # the effects of the steps below, one entry per run


def _record(ctx: Any, key: str) -> None:
    runs.append(key)


def _effect(ctx: Any, key: str) -> datetime.datetime:
    _record(ctx, key)
    return datetime.datetime.now(datetime.UTC)


def returns_a_datetime(ctx: Any, key: str) -> Any:
    yield engine.step(ctx, _effect, key)
    return {"at": datetime.datetime.now(datetime.UTC)}


def steps_to_a_datetime(ctx: Any, key: str) -> Any:
    when = yield engine.step(ctx, _effect, key)
    return {"at": str(when)}


def raises_value_error(ctx: Any, key: str) -> Any:
    yield engine.step(ctx, _record, key)
    raise ValueError(f"no invoice for {key}")


class Declined(Exception):
    """An error with an attribute JSON can hold and one it cannot (as an HTTP error's response)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.code, self.response = 402, object()


def raises_with_a_response(ctx: Any, key: str) -> Any:
    yield engine.step(ctx, _record, key)
    raise Declined(f"card declined for {key}")


@pytest.fixture
def worker_engine(make_stack: Callable[..., Stack]) -> Iterator[Engine]:
    """A server, and this process serving GROUP with the functions above."""
    server = make_stack().engine.start()
    nodes = engine.run_worker(GROUP, [returns_a_datetime, steps_to_a_datetime,
                                      raises_value_error, raises_with_a_response], server.url,
                              server.poll_url, claim_ttl_seconds=2, heartbeat_seconds=0.5)
    try:
        yield Engine(server.url, 5)
    finally:
        for node in nodes:
            node.drain(1)


def settled(client: Engine, function: str, key: str) -> Promise:
    client.invoke(key, function, [key], group=GROUP, timeout_seconds=60)
    return wait_until(lambda: (job := client.get(key)).pending is False and job, 20,
                      f"{function} to settle")


@pytest.mark.parametrize("function", ["returns_a_datetime", "steps_to_a_datetime"])
def test_a_value_json_cannot_hold_rejects_the_job_once(worker_engine, function):
    """It dropped the run: the replay ran the step again every claim ttl, the job pending."""
    key = uuid.uuid4().hex
    job = settled(worker_engine, function, key)
    assert job.state == "rejected"
    assert job.value["type"] == "NotJson"
    assert "datetime is not JSON serializable" in job.value["message"]
    time.sleep(3)  # more than a claim ttl: a dropped run would have run its step again
    assert runs.count(key) == 1


def test_an_exception_keeps_its_message(worker_engine):
    """The SDK stores an exception's __dict__ alone: ValueError("why") was {"message": ""}."""
    key = uuid.uuid4().hex
    job = settled(worker_engine, "raises_value_error", key)
    assert job.state == "rejected"
    assert job.value == {"type": "ValueError", "message": f"no invoice for {key}"}


def test_an_exception_keeps_what_json_can_hold_of_it(worker_engine):
    """One attribute JSON cannot hold failed the whole error: the job ended NotJson."""
    key = uuid.uuid4().hex
    job = settled(worker_engine, "raises_with_a_response", key)
    assert job.state == "rejected"
    assert job.value == {"type": "Declined", "message": f"card declined for {key}", "code": 402}
    assert runs.count(key) == 1
