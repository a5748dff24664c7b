"""Unit tests of the engine layer's guards around SDK 0.4.10 (no server needed)."""

from __future__ import annotations

import json
import threading
from queue import Queue

import pytest
from resonate.actions import RFI
from resonate.dataclasses import Invocation
from resonate.encoders import JsonEncoder
from resonate.errors import ResonateError
from resonate.record import Record
from resonate.stores.record import DurablePromiseRecord, Param, TaskRecord, Value

from async_api.engine import JobSettledElsewhere, Promise
from async_api.engine.client import SERVER_STATES
from async_api.engine.leases import Leases
from async_api.engine.runtime import run_worker
from async_api.engine.sdk_fixes import (
    ClaimLost,
    FencedStore,
    Offers,
    ReconnectingPoller,
    as_seen_by_workflow,
)
from async_api.engine.transport import Answer
from async_api.newest import Newest


def _started(poller: ReconnectingPoller) -> ReconnectingPoller:
    """As its scheduler starts it, without a stream."""
    poller.takes_offers(Queue())
    return poller


def _claimed(poller: ReconnectingPoller) -> list[tuple[str, int]]:
    """The offers the poller queued for the scheduler, in order."""
    queued = []
    while not poller._claims.empty():
        task = poller._claims.get().record
        queued.append((task.task_id, task.counter))
    return queued


def test_the_poller_queues_each_offer_once_and_skips_replaced_ones():
    poller = _started(ReconnectingPoller(url="http://127.0.0.1:1", group="worker"))
    first, again, newer = (TaskRecord(task_id="t1", counter=c) for c in (1, 1, 2))

    poller.offer(first)
    poller.offer(again)  # a re-send
    poller.offer(newer)  # offered again after its enqueue delay
    assert _claimed(poller) == [("t1", 1), ("t1", 2)]
    assert not poller.current(first)  # the scheduler skips the old offer without a claim
    assert poller.current(newer)


def test_offers_wait_while_the_worker_is_full_and_are_queued_as_room_frees():
    poller = _started(ReconnectingPoller(url="http://127.0.0.1:1", group="worker"))
    poller.has_room = lambda queued: queued < 1

    for task_id in ("t1", "t2", "t3"):
        poller.offer(TaskRecord(task_id=task_id, counter=1))
    poller.offer(TaskRecord(task_id="t2", counter=2))  # offered again while waiting
    assert _claimed(poller) == [("t1", 1)]  # full: the others wait here
    assert poller.current(TaskRecord(task_id="t1", counter=1))
    poller.refill()  # the scheduler, after the step that claimed t1
    assert _claimed(poller) == [("t2", 2)]  # its place in line, its newest offer
    poller.refill()
    assert _claimed(poller) == []  # t2 not yet taken by the scheduler: still full


def test_an_offer_to_a_full_node_goes_to_a_sibling_with_room():
    offers = Offers()
    full, free = (_started(ReconnectingPoller(url="http://127.0.0.1:1", group="worker",
                                              offers=offers)) for _ in range(2))
    full.has_room = lambda queued: False

    full.offer(TaskRecord(task_id="t1", counter=1))  # the server picked the full node
    assert (_claimed(full), _claimed(free)) == ([], [("t1", 1)])
    free.has_room = lambda queued: False
    free.offer(TaskRecord(task_id="t2", counter=1))
    assert (_claimed(full), _claimed(free)) == ([], [])  # both full: it waits
    full.has_room = lambda queued: True
    free.refill()  # whichever node's scheduler steps next places it where there is room
    assert (_claimed(full), _claimed(free)) == ([("t2", 1)], [])


def _record(state: str) -> DurablePromiseRecord:
    return DurablePromiseRecord(
        state=state, id="job-1", timeout=0, param=Param(data=None, headers=None),
        value=Value(data=None, headers=None), created_on=0, completed_on=1,
        idempotency_key_for_create=None, idempotency_key_for_complete=None, tags={},
    )


@pytest.mark.parametrize("state", ["REJECTED_CANCELED", "REJECTED_TIMEDOUT"])
def test_a_canceled_promise_reaches_the_workflow_as_an_error(state):
    seen = as_seen_by_workflow(_record(state))

    error = seen.get_value(JsonEncoder()).err()  # the SDK would assert on `state`
    assert isinstance(error, JobSettledElsewhere)
    assert "job-1" in error.message


def test_other_promises_pass_unchanged():
    record = _record("RESOLVED")
    assert as_seen_by_workflow(record) is record


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_lease_lasts_a_ttl_from_the_claim_less_a_margin_and_heartbeats_renew_it():
    clock = FakeClock()
    leases = Leases(5.0, clock)
    leases.hold("t1", 1, "pid.t1.1", "job-1", claimed_at=clock.now)

    clock.now += 3.9
    assert leases.valid("t1")
    clock.now += 0.2  # 4.1 s: past ttl minus the 1 s margin
    assert not leases.valid("t1")

    leases.renewed("pid.t1.1", sent_at=clock.now)
    assert leases.valid("t1")
    assert leases.claim_pids() == ["pid.t1.1"]


def test_a_lease_the_server_forgot_is_lost_and_released_with_its_workflow():
    clock = FakeClock()
    leases = Leases(5.0, clock)
    leases.hold("t1", 1, "pid.t1.1", "job-1", claimed_at=clock.now)
    leases.hold("t2", 1, "pid.t2.1", "job-2", claimed_at=clock.now)

    leases.mark_lost("pid.t1.1")
    leases.renewed("pid.t1.1", sent_at=clock.now)  # a late beat does not revive it
    assert not leases.valid("t1")
    assert leases.claim_pids() == ["pid.t2.1"]

    assert [lease.task_id for lease in leases.release_root("job-1")] == ["t1"]
    assert len(leases) == 1 and leases.valid("t2")


def test_a_renewal_confirmed_after_the_lease_lapsed_here_does_not_revive_it():
    """A frozen server answers a heartbeat late; by then it may have handed the task out."""
    clock = FakeClock()
    leases = Leases(5.0, clock)
    leases.hold("t1", 1, "pid.t1.1", "job-1", claimed_at=clock.now)

    sent_at = clock.now + 4.5
    clock.now += 5.0  # the ttl, counted from the claim: lapsed
    assert not leases.renewed("pid.t1.1", sent_at)
    assert not leases.valid("t1")
    assert leases.claim_pids() == []  # no more heartbeats for it


def test_newest_keeps_the_newest_entries_up_to_its_size():
    settled: Newest[str, Promise] = Newest(2)
    for n in range(3):
        settled.remember(f"job-{n}", Promise(id=f"job-{n}", state="resolved", value=n, tags={}))

    assert settled.get("job-0") is None  # the oldest went
    assert settled.get("job-2").value == 2


def test_a_fenced_store_stops_retrying_once_the_claim_is_lost():
    """While the server is unreachable the store retries each second, but asks the fence first:
    once the claim is lost the write is abandoned, never sent when the server comes back."""
    store = FencedStore("http://127.0.0.1:1", timeout_seconds=0.2)  # nothing listens there
    attempts: list[int] = []

    def fence() -> None:
        attempts.append(1)
        if len(attempts) > 1:  # the second attempt comes after the claim ran out
            raise ClaimLost("job-1")

    store.fence = fence
    outcome: list[type[BaseException]] = []

    def write() -> None:
        try:
            store.promises.resolve(id="job-1", ikey=None, strict=False, headers=None, data=None)
        except ClaimLost as exc:
            outcome.append(type(exc))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(10)
    assert outcome == [ClaimLost]
    assert len(attempts) == 2


@pytest.mark.parametrize(("nodes", "started"), [(0, 1), (1, 1), (3, 3)])
def test_run_worker_starts_at_least_one_node(nodes, started):
    """WORKER_SCHEDULERS=0 was divided by before it was raised to one (ZeroDivisionError)."""
    workers = run_worker("worker", [], "http://127.0.0.1:1", "http://127.0.0.1:1", nodes=nodes)
    try:
        assert len(workers) == started
    finally:
        for worker in workers:
            worker.drain(0)


def test_a_dropped_runs_unwritten_step_is_forgotten():
    """A first run's step promise waits in memory until the step ends; a run dropped before
    that (its claim lost) must not leave it there for the life of the process."""
    promises = FencedStore("http://127.0.0.1:1", timeout_seconds=0.2).promises
    promises.step_name, promises.first_run = "foo_effect", True
    step = promises.create(id="job-1.1", ikey="job-1.1", strict=False, headers=None, data=None,
                           timeout=1, tags=None)
    assert step.state == "PENDING"  # made here: no server listens at that address

    promises.forget("job-1.1")

    assert promises._unwritten == {}


def test_forgetting_a_started_workflow_forgets_its_starter():
    """A fan-out holds its squares' records among its children. A square dropped here (its
    claim lost in an engine outage) and run again got a new record; the fan-out, resumed, still
    waited on the old one, and once the others were done the SDK's AssertionError became its
    result: the job rejected. Forgetting the square forgets the fan-out too, which replays."""
    (worker,) = run_worker("worker", [], "http://127.0.0.1:1", "http://127.0.0.1:1")
    scheduler = worker.hand_back_held.__self__  # type: ignore[attr-defined]
    try:
        fan_out = Record("fan", RFI(Invocation("fan_out_workflow", 2)), None, ctx=None)
        squares = [Record(f"fan.{n}", RFI(Invocation("square", n)), fan_out, ctx=None)
                   for n in (1, 2)]
        for square in squares:
            fan_out.add_child(square)
        scheduler._records.update({record.id: record for record in (fan_out, *squares)})

        scheduler._forget("fan.2")

        assert scheduler._records == {}  # the square, and the fan-out that started it
    finally:
        worker.drain(0)


def test_a_callback_registered_before_is_awaited():
    """The server answers a callback it holds already (a replay's, same id) with none and the
    promise pending; SDK 0.4.10 asserted the promise was settled, and the replay was dropped
    at every claim until it was."""
    pending = {"id": "fan.3", "state": "PENDING", "timeout": 1, "param": {}, "value": {},
               "createdOn": 1, "tags": None}

    class Answer:
        def json(self) -> dict:
            return {"callback": None, "promise": pending}

    callbacks = FencedStore("http://127.0.0.1:1", timeout_seconds=0.2).callbacks
    callbacks._call = lambda request: Answer()

    promise, callback = callbacks.create(id="cb-1", promise_id="fan.3", root_promise_id="fan",
                                         timeout=9, recv="poll://any@worker")

    assert promise.state == "PENDING"
    assert (callback.callback_id, callback.id) == ("cb-1", "fan.3")  # awaited, not "settled"


@pytest.mark.parametrize(("ended_here", "state", "warned"), [
    (True, "RESOLVED", False), (False, "RESOLVED", False), (False, "PENDING", True)])
def test_a_claim_ended_here_meanwhile_is_not_lost(ended_here, state, warned, caplog):
    """A heartbeat finds no task under a claim whose job this worker settled while the beat
    was on its way (settling a job completes its task): the claim ended here, and was said
    to have expired on the server, a WARNING for a job that ran once (seen 5 times in a burst
    of 1,500 jobs). A claim still held on a settled job is let go quietly (this run settled
    it, or another worker did and this run is dropped, which says so); one on a pending job
    did expire and is said to."""
    (worker,) = run_worker("worker", [], "http://127.0.0.1:1", "http://127.0.0.1:1",
                           heartbeat_seconds=60)  # its own heartbeat thread stays asleep
    scheduler = worker.hand_back_held.__self__  # type: ignore[attr-defined]
    leases = scheduler._leases
    leases.hold("7", 1, "node.7.1", "job-7", leases.now())
    job = {"id": "job-7", "state": state, "timeout": 1, "param": {}, "value": {},
           "createdOn": 1, "completedOn": 2, "tags": None}

    class Beats:
        def send(self, request):
            if request.url.endswith("/tasks/heartbeat"):
                if ended_here:
                    leases.release("7")  # the scheduler thread, as the job's settle returned
                return Answer(200, b'{"tasksAffected": 0}')
            return Answer(200, json.dumps(job).encode())

    try:
        with caplog.at_level("INFO", logger="async_api.engine.runtime"):
            assert scheduler._beat(Beats(), "node.7.1")
        warnings = [r.getMessage() for r in caplog.records
                    if r.levelname == "WARNING" and r.name == "async_api.engine.runtime"]
        assert warnings == (["claim node.7.1 expired on the server"] if warned else [])
        assert not leases.valid("7")
    finally:
        worker.drain(0)


@pytest.mark.parametrize("state", ["REJECTED_CANCELED", "REJECTED_TIMEDOUT"])
def test_a_run_that_suspends_after_its_job_was_settled_ends_said_so(state, caplog):
    """A job canceled or timed out while its step ran, the step ending before a heartbeat saw
    it, and the workflow then waiting (a fan-out's progress step, then its next square): the
    settle completed the task (patch 0006), so its own completion is refused (403). The run
    ends said and counted `canceled` or `timedout`, as when its settle is refused (was
    `dropped`: a WARNING that the server hands it out again, counted failed and handed back;
    a heartbeat meanwhile says nothing of a claim being completed)."""
    (worker,) = run_worker("worker", [], "http://127.0.0.1:1", "http://127.0.0.1:1",
                           heartbeat_seconds=60)  # its own heartbeat thread stays asleep
    scheduler = worker.hand_back_held.__self__  # type: ignore[attr-defined]
    leases = scheduler._leases
    job = {"id": "job-9", "state": state, "timeout": 1, "param": {}, "value": {},
           "createdOn": 1, "completedOn": 2, "tags": None}

    class Server:
        def send(self, request):
            if request.url.endswith("/tasks/complete"):
                return Answer(403, b'{"error": "The task is already completed"}')
            assert request.url.endswith("/promises/job-9"), request.url
            return Answer(200, json.dumps(job).encode())

    scheduler._store._transport = Server()
    root = Record("job-9", RFI(Invocation("fan_out_workflow", 2)), None, ctx=None)
    root.add_task(TaskRecord(task_id="9", counter=1))
    scheduler._records["job-9"] = root
    leases.hold("9", 1, "node.9.1", "job-9", leases.now())
    scheduler._task_started("job-9", "9")
    scheduler._current_root = "job-9"
    try:
        with caplog.at_level("INFO", logger="async_api.engine.runtime"):
            with pytest.raises(ResonateError):
                scheduler._complete_task("job-9")
            scheduler._drop("job-9", "the server refused a write (STORE_FORBIDDEN)")  # _step's
        finished = [r for r in caplog.records if r.getMessage() == "task finished"]
        assert [r.fields["outcome"] for r in finished] == [SERVER_STATES[state]]
        assert not [r for r in caplog.records
                    if r.levelname == "WARNING" and r.name == "async_api.engine.runtime"]
        assert leases.handed_back == 0 and len(leases) == 0
    finally:
        scheduler._current_root = None
        worker.drain(0)
