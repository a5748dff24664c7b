"""Unit tests of the engine module's guards around SDK 0.4.10 (no server needed)."""

from __future__ import annotations

import pytest
from resonate.stores.record import DurablePromiseRecord, Param, TaskRecord, Value

from async_api import engine


def test_the_poller_queues_each_task_and_counter_once():
    poller = engine._ReconnectingPoller(url="http://127.0.0.1:1", group="worker")

    assert poller._first_time(TaskRecord(task_id="t1", counter=1))
    assert not poller._first_time(TaskRecord(task_id="t1", counter=1))  # a re-send
    assert poller._first_time(TaskRecord(task_id="t1", counter=2))  # a new attempt


def _record(state: str) -> DurablePromiseRecord:
    return DurablePromiseRecord(
        state=state, id="job-1", timeout=0, param=Param(data=None, headers=None),
        value=Value(data=None, headers=None), created_on=0, completed_on=1,
        idempotency_key_for_create=None, idempotency_key_for_complete=None, tags={},
    )


@pytest.mark.parametrize("state", ["REJECTED_CANCELED", "REJECTED_TIMEDOUT"])
def test_a_canceled_promise_reaches_the_workflow_as_an_error(state):
    seen = engine._as_seen_by_workflow(_record(state))

    error = seen.get_value(engine.JsonEncoder()).err()  # the SDK would assert on `state`
    assert isinstance(error, engine.JobSettledElsewhere)
    assert "job-1" in error.message


def test_other_promises_pass_unchanged():
    record = _record("RESOLVED")
    assert engine._as_seen_by_workflow(record) is record
