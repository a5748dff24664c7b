"""Fixes to resonate-sdk 0.4.10's internals, each where the SDK would end the worker process.

Every class here replaces one SDK piece; its docstring says why it exists and which test
proves it. A newer SDK should make each of them unnecessary: delete them then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from queue import Queue
from threading import Thread
from typing import Any

import requests
from resonate.cmd_queue import Claim, CommandQ, Complete, Invoke
from resonate.dataclasses import ResonateCoro
from resonate.delay_queue import DelayQueue
from resonate.encoders import JsonEncoder, _classname
from resonate.errors import ResonateError
from resonate.processor.processor import Processor
from resonate.result import Err, Ok, Result
from resonate.stores.record import (
    CallbackRecord,
    DurablePromiseRecord,
    InvokeMsg,
    Param,
    ResumeMsg,
    TaskRecord,
    Value,
)
from resonate.stores.remote import (
    RemoteCallbackStore,
    RemotePromiseStore,
    RemoteStore,
    RemoteTaskStore,
)
from resonate.task_sources.poller import Poller

from async_api import logs, metrics
from async_api.engine.client import SERVER_STATES, STEP_TAG, TRACEPARENT_TAG
from async_api.engine.transport import Answer, Transport, Unreachable
from async_api.engine.workflow import ChildFailed, JobSettledElsewhere, step_name

_log = logging.getLogger(__name__)


def function_of(record: Any) -> str:
    """The name of what a record runs: a root's durable function, a step's function (as the
    step's promise is tagged: STEP_TAG)."""
    return step_name(getattr(getattr(record.invocation, "unit", None), "fn", "unknown"))


def job_fields(job_id: str, promise: Any) -> dict[str, Any]:
    """The log fields of the job `job_id`, whose durable promise (if known) is `promise`: its
    id and the trace it belongs to, from the traceparent jobs.start tagged it with (or the
    scheduler gave a child it created)."""
    tags = (promise.tags if promise is not None else None) or {}
    traceparent = tags.get(TRACEPARENT_TAG)
    return {"job_id": job_id, "trace_id": logs.trace_id_of(traceparent),
            "traceparent": traceparent}


class ReconnectingPoller(Poller):
    """The SDK's poller, but it survives any stream failure and can stop.

    SDK 0.4.10 reconnects only on ConnectionError; a stream cut by a SIGKILLed server raises
    ChunkedEncodingError (or a half message fails to decode), which ends the worker process
    (tests/test_outages.py). Its stop() raises NotImplementedError; this
    one closes the stream so the server sends new tasks elsewhere (tests/test_shutdown.py).
    """

    def __init__(self, url: str, group: str, offers: Offers | None = None) -> None:
        super().__init__(url=url, group=group)
        self._offers = offers or Offers()
        self._queued = 0  # offers queued that the scheduler has not got to yet
        self._claims: CommandQ | None = None  # the scheduler's queue, once started
        self.has_room: Callable[[int], bool] = lambda queued: True  # the runtime sets its own
        self._stopping = threading.Event()
        self._response: requests.Response | None = None

    def stop(self) -> None:
        """Ends the stream: the server forgets this connection and sends tasks elsewhere."""
        self._stopping.set()
        connection = getattr(getattr(self._response, "raw", None), "_connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:  # shutdown, not close: the poller thread is blocked reading it
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def takes_offers(self, claims: CommandQ) -> None:
        """From now on, offers this node has room for are queued to `claims`, its scheduler's."""
        self._claims = claims
        self._offers.join(self)

    def _run(self, cmd_queue: CommandQ, pid: str) -> None:
        self.takes_offers(cmd_queue)
        url = f"{self._url}/{self._group}/{pid}"
        failures = 0
        while not self._stopping.is_set():
            try:
                with requests.get(url, stream=True, timeout=(5, None)) as response:
                    self._response = response
                    if response.ok:
                        if failures:
                            _log.warning("poller: reconnected to %s", url)
                        failures = 0
                        self._read_offers(response)
                    else:  # e.g. RESONATE_POLL_URL names the promise API: no task ever comes
                        failures += 1
                        if failures == 1:
                            _log.error("poller: %s answered %s, not a task stream (is "
                                       "RESONATE_POLL_URL the server's poll port?); retrying",
                                       url, response.status_code)
            except Exception as exc:  # whatever the stream did, poll again
                if self._stopping.is_set():
                    return  # closed by stop(); urllib3 may surface that oddly
                failures += 1
                if failures == 1:  # once per outage, not once a second
                    _log.warning("poller: connection to %s lost (%s), reconnecting", url, exc)
            time.sleep(1)

    def _read_offers(self, response: requests.Response) -> None:
        for line in response.iter_lines(chunk_size=None, decode_unicode=True):
            if self._stopping.is_set():
                return  # unclaimed: the server offers it again to a live worker
            if not line or not line.strip().startswith("data:"):
                continue
            message = self._encoder.decode(line.strip()[5:])
            if "task" in message:
                self.offer(TaskRecord.decode(message["task"], encoder=self._encoder))

    def offer(self, task: TaskRecord) -> None:
        self._offers.offer(task, self)

    def refill(self) -> None:
        """Queues waiting offers while there is room; the scheduler calls it after each step."""
        self._offers.place(self)

    def current(self, task: TaskRecord) -> bool:
        """Called once the scheduler gets to an offer: False if a newer one replaced it."""
        return self._offers.current(task, self)

    def takes_more(self) -> bool:
        """Under the Offers lock: whether one more claim may be queued here."""
        return (self._claims is not None and not self._stopping.is_set()
                and self.has_room(self._queued))

    def queue(self, task: TaskRecord) -> None:
        """Under the Offers lock: the scheduler claims `task` next."""
        assert self._claims is not None
        self._queued += 1
        self._claims.put(Claim(task))

    def dequeued(self) -> None:
        """Under the Offers lock: the scheduler got to a queued offer."""
        self._queued -= 1


class Offers:
    """The task offers of one worker group in one process, shared by its nodes' pollers.

    The server offers a task again (a new counter) when it was not claimed within its
    task-enqueue-delay, and re-sends unclaimed ones. SDK 0.4.10 queues every copy: a busy
    worker's backlog then holds offers that are stale before it gets to them, each claim of
    those fails, and the backlog grows faster than it drains (tests/test_burst.py). Here each
    task waits once (with its newest offer) and is queued only while a node has room, as soon
    as one has: waiting for the server's next offer instead ran a burst at one batch of claims
    per enqueue delay (16 jobs/s; `make bench`, burst row).

    The server sends an offer to a node of the group at random; shared, an offer that reaches
    a full node goes to a sibling with room, and a node that was full waits for no offer sent
    to another (tests/test_burst.py::test_offers_to_a_full_node_go_to_its_siblings).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._newest: OrderedDict[str, int] = OrderedDict()  # task id -> newest counter queued
        # Offers that came while every node was full, oldest first, claimed as room frees up.
        self._waiting: OrderedDict[str, TaskRecord] = OrderedDict()
        self._pollers: list[ReconnectingPoller] = []

    def join(self, poller: ReconnectingPoller) -> None:
        """A node whose scheduler started: from now on it takes offers."""
        with self._lock:
            self._pollers.append(poller)
            self._place(poller)

    def offer(self, task: TaskRecord, received_by: ReconnectingPoller) -> None:
        with self._lock:
            if self._newest.get(task.task_id, -1) >= task.counter:
                return  # a re-send, or older than one queued
            self._newest[task.task_id] = task.counter
            self._newest.move_to_end(task.task_id)
            if len(self._newest) > 100_000:
                self._newest.popitem(last=False)
            self._waiting[task.task_id] = task  # a newer offer keeps the older one's place
            self._place(received_by)

    def place(self, first: ReconnectingPoller) -> None:
        with self._lock:
            self._place(first)

    def _place(self, first: ReconnectingPoller) -> None:
        for poller in (first, *self._pollers):
            while self._waiting and poller.takes_more():
                poller.queue(self._waiting.popitem(last=False)[1])
            if not self._waiting:
                return

    def current(self, task: TaskRecord, poller: ReconnectingPoller) -> bool:
        with self._lock:
            poller.dequeued()
            return self._newest.get(task.task_id) == task.counter


def canceled_or_timedout(record: DurablePromiseRecord) -> str | None:
    """`canceled` or `timedout` for a promise settled so, by a cancel or its deadline rather
    than by a run; None for any other."""
    if record.state in ("REJECTED_CANCELED", "REJECTED_TIMEDOUT"):
        return SERVER_STATES[record.state]
    return None


def as_seen_by_workflow(record: DurablePromiseRecord) -> DurablePromiseRecord:
    """A canceled or timed-out promise, shown to the SDK as a rejection it can handle.

    SDK 0.4.10 asserts that a settled promise is resolved or rejected: meeting a canceled one
    (a job canceled from the gateway while its worker ran) ends the worker process
    (tests/test_engine_unit.py, tests/test_jobs.py cancel tests).
    """
    settled = canceled_or_timedout(record)
    if settled is None:
        return record
    reason = JobSettledElsewhere(f"{record.id} was {settled} before it finished")
    return dataclasses.replace(
        record, state="REJECTED", value=Value(data=JsonEncoder().encode(reason), headers=None)
    )


class NotJson(TypeError):
    """What a durable function or step returned (or raised) holds a value JSON cannot: a
    datetime, bytes, a set. It becomes the promise's rejection, with a message saying so."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StrictEncoder(JsonEncoder):
    """The SDK's encoder, but a value JSON cannot hold raises NotJson, which the scheduler
    stores as the rejection instead. SDK 0.4.10's TypeError dropped the run: its replay ran
    every step again, once a claim ttl, and the job stayed pending until its deadline
    (tests/test_function_values.py)."""

    def encode(self, data: Any) -> str:
        if isinstance(data, Exception):
            # SDK 0.4.10 keeps only __dict__ (ValueError("why") lost its "why"), and one
            # attribute JSON cannot hold (an HTTP error's response) failed the whole error: the
            # message goes beside "attributes" (which the SDK's decoding passes to the class),
            # and such attributes are left out. A ChildFailed is stored as the error it stands for.
            if isinstance(data, ChildFailed):
                kind, attributes = data.type, data.attributes
            else:
                kind = _classname(data)
                attributes = {name: value for name, value in vars(data).items()
                              if _holds_json(value)}
            return json.dumps({"__type": kind, "attributes": attributes, "message": str(data)})
        try:
            return super().encode(data)
        except (TypeError, ValueError) as exc:
            raise NotJson(f"the result is not JSON: {exc}") from exc

    def decode(self, data: str) -> Any:
        """The SDK's decoding rebuilt an error as cls(**attributes): a class whose __init__
        takes other arguments (or one not importable here) raised in the caller's worker, which
        dropped its run at every claim until its deadline
        (tests/test_workflow_errors.py, its Unbuildable and Foreign cases)."""
        return json.loads(data, object_hook=_rebuilt)


def _rebuilt(stored: dict[str, Any]) -> Any:
    """A stored error as its own class, with its message and attributes, or else ChildFailed."""
    if "__type" not in stored:
        return stored
    qualified, attributes = str(stored["__type"]), stored.get("attributes") or {}
    message = stored.get("message", attributes.get("message", ""))
    try:
        module, name = qualified.rsplit(".", 1)
        cls = getattr(importlib.import_module(module), name)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(f"{qualified} is not an exception class")
        try:
            error = cls(**attributes)  # the SDK's way
        except Exception:  # as pickle would: no __init__, and its state set back
            error = cls.__new__(cls)
            error.__dict__.update(attributes)
        error.args = (message,)  # the SDK kept __dict__ only: ValueError("why") lost its "why"
    except Exception:  # whatever failed, the caller gets an error it can catch
        return ChildFailed(qualified, str(message), attributes)
    return error


def _holds_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


class RecoveringCoro(ResonateCoro):
    """The SDK's workflow coroutine, but a workflow that catches the error of what it awaited
    and returns from its except block resolves with what it returned: SDK 0.4.10's _throw
    replaced that with the error caught, and the job ended rejected
    (tests/test_workflow_errors.py, "returning from except resolves")."""

    def _throw(self, error: Exception) -> Any:
        if not self._coro_active:  # an error after the workflow returned: the SDK's rule
            return super()._throw(error)
        try:
            return self._coro.throw(error)
        except StopIteration as returned:
            self._final_value = Ok(returned.value)
            self._coro_active = False
        return self._send(None)  # it returned: ends as a return does (after awaiting children)


class ClaimLost(Exception):
    """The worker's claim on the task it is writing for has expired: the write must not go."""


@dataclasses.dataclass
class _Checkpoint:
    """A step of a workflow's first run that has ended, its promise not yet written."""

    create: dict[str, Any]  # the SDK's create call for the step's promise
    state: str  # RESOLVED or REJECTED
    settle: dict[str, Any]  # the SDK's resolve or reject call for it


class _WorkflowPromiseStore(RemotePromiseStore):
    """The SDK's promise store, tolerant of promises settled by someone else (a cancel), and
    tagging a step's promise with its function (`step_name`, set by the runtime's scheduler
    while it creates a step): SDK 0.4.10 stores no trace of it, and GET /jobs/{id}/steps and
    progress reports need one (tests/test_history.py).

    In the first run of a workflow (`first_run`, set by the scheduler with `step_name`) no
    step's checkpoint can exist yet, so a step's promise is not created before it runs, as the
    SDK does, but once it ends, already settled with its result: one server write instead of
    two (POST /promises with a state, scripts/resonate-patches/0007; test_history.py::
    test_a_first_run_checkpoints_each_step_in_one_write). A step cut short leaves no
    checkpoint either way, so a later run runs it again, as before.

    Such a checkpoint is held while the workflow goes on at once (`current_root` names the
    workflow the scheduler works for; once the workflow waits, the scheduler calls
    `write_held`): if it returns, as `foo` does right after its step, the step's promise goes
    with the workflow's result, in one write (PATCH with `created`,
    scripts/resonate-patches/0008; test_history.py::
    test_a_workflow_returning_after_its_step_writes_both_at_once). Any other write of the
    workflow, and the start of its next step, write it first.
    """

    step_name: str | None = None
    first_run = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current_root: Callable[[], str | None] = lambda: None  # the scheduler sets its own
        self._unwritten: dict[str, dict[str, Any]] = {}  # step promise id -> its create's kwargs
        self._held: dict[str, _Checkpoint] = {}  # by workflow (root promise id)
        # promise id -> canceled or timedout: its settle was refused, its job ended so meanwhile
        self.settled_elsewhere: dict[str, str] = {}

    def create(self, **kwargs: Any) -> DurablePromiseRecord:
        self.write_held(self.current_root())
        if self.step_name is not None and not kwargs.get("tags"):
            kwargs["tags"] = {STEP_TAG: self.step_name}
        if self.step_name is not None and self.first_run:
            self._unwritten[kwargs["id"]] = kwargs
            return _unwritten_record(kwargs)
        self._unwritten.pop(kwargs["id"], None)  # a step of a run that was dropped
        return as_seen_by_workflow(super().create(**kwargs))

    def forget(self, promise_id: str) -> None:
        """A dropped run's step, never to end here, or its workflow: nothing of it is written."""
        self._unwritten.pop(promise_id, None)
        self._held.pop(promise_id, None)
        self.settled_elsewhere.pop(promise_id, None)

    def write_held(self, root_id: str | None) -> None:
        """Writes the workflow's held checkpoint, if it has one, on its own."""
        if root_id is not None and (checkpoint := self._held.pop(root_id, None)) is not None:
            self._create_settled(checkpoint)

    def get(self, **kwargs: Any) -> DurablePromiseRecord:
        return as_seen_by_workflow(super().get(**kwargs))

    def settled_as(self, promise_id: str) -> str | None:
        """`canceled` or `timedout` if the server says the promise was settled so."""
        return canceled_or_timedout(super().get(id=promise_id))

    def resolve(self, **kwargs: Any) -> DurablePromiseRecord:
        return self._complete("RESOLVED", kwargs)

    def reject(self, **kwargs: Any) -> DurablePromiseRecord:
        return self._complete("REJECTED", kwargs)

    def _complete(self, state: str, kwargs: dict[str, Any]) -> DurablePromiseRecord:
        root_id = self.current_root()
        if kwargs["id"] in self._unwritten:
            checkpoint = _Checkpoint(self._unwritten.pop(kwargs["id"]), state, kwargs)
            if root_id is None:
                return self._create_settled(checkpoint)
            self.write_held(root_id)  # an earlier step of the same workflow goes first
            self._held[root_id] = checkpoint
            return _settled_record(checkpoint)
        held = self._held.pop(kwargs["id"], None)  # the workflow's own result carries it
        if held is None:
            self.write_held(root_id)
        return self._settle(state, kwargs, held)

    def _create_settled(self, checkpoint: _Checkpoint) -> DurablePromiseRecord:
        create = checkpoint.create
        try:
            answer = self._call(requests.Request(
                method="post", url=f"{self.url}/promises",
                headers=self._initialize_headers(strict=False, ikey=create["ikey"]),
                json=self._created_body(checkpoint)))
        except ResonateError as exc:
            if exc.code != "STORE_ALREADY_EXISTS":  # 409: there, under another key
                raise
            return self._settle(checkpoint.state, checkpoint.settle)
        created = DurablePromiseRecord.decode(data=answer.json(), encoder=self._encoder)
        if created.state == "PENDING":  # another run of the workflow created it meanwhile
            return self._settle(checkpoint.state, checkpoint.settle)
        return as_seen_by_workflow(created)

    def _created_body(self, checkpoint: _Checkpoint) -> dict[str, Any]:
        create, settle = checkpoint.create, checkpoint.settle
        return {"id": create["id"], "idempotencyKey": create["ikey"],
                "timeout": create["timeout"], "tags": create["tags"],
                "param": {"headers": create["headers"], "data": self._encode_data(create["data"])},
                "state": checkpoint.state,
                "value": {"headers": settle["headers"], "data": self._encode_data(settle["data"])}}

    def _settle(self, state: str, kwargs: dict[str, Any],
                held: _Checkpoint | None = None) -> DurablePromiseRecord:
        """The SDK's resolve or reject, with the held checkpoint `held` in the same write. The
        server writes that only when this call settles the promise (201); otherwise (this call
        sent twice, say) it is written on its own after. A promise canceled or timed out
        meanwhile (the server answers 403, or a timed-out one as it is) is noted in
        `settled_elsewhere`, and its held checkpoint goes with the run, as when a heartbeat
        sees the settle first: SDK 0.4.10 took the refused settle for its own, and the worker
        said the canceled job `resolved` (tests/test_jobs.py::
        test_a_job_canceled_or_timed_out_mid_step_is_said_so_when_its_step_ends_first)."""
        body = {"state": state,
                "value": {"headers": kwargs["headers"], "data": self._encode_data(kwargs["data"])}}
        if held is not None:
            body["created"] = [self._created_body(held)]
        try:
            answer = self._call(requests.Request(
                method="patch", url=f"{self.url}/promises/{kwargs['id']}",
                headers=self._initialize_headers(strict=kwargs["strict"], ikey=kwargs["ikey"]),
                json=body))
            found = DurablePromiseRecord.decode(data=answer.json(), encoder=self._encoder)
        except ResonateError as exc:
            if exc.code != "STORE_FORBIDDEN":  # 403: settled already, e.g. canceled
                raise
            answer, found = None, super().get(id=kwargs["id"])
        if (settled := canceled_or_timedout(found)) is not None:
            self.settled_elsewhere[kwargs["id"]] = settled
        elif held is not None and (answer is None or answer.status_code != 201):
            self._create_settled(held)
        return as_seen_by_workflow(found)


def _unwritten_record(create: dict[str, Any]) -> DurablePromiseRecord:
    """A first run's step promise, pending, as the server would answer the SDK's create."""
    return DurablePromiseRecord(
        state="PENDING", id=create["id"], timeout=create["timeout"],
        param=Param(data=create["data"], headers=create["headers"]),
        value=Value(data=None, headers=None), created_on=int(time.time() * 1000),
        completed_on=None, idempotency_key_for_create=create["ikey"],
        idempotency_key_for_complete=None, tags=create["tags"])


def _settled_record(checkpoint: _Checkpoint) -> DurablePromiseRecord:
    """The step's promise as the server will store it: what the SDK reads of its result."""
    pending = _unwritten_record(checkpoint.create)
    return dataclasses.replace(
        pending, state=checkpoint.state,
        value=Value(data=checkpoint.settle["data"], headers=checkpoint.settle["headers"]),
        completed_on=pending.created_on,
        idempotency_key_for_complete=checkpoint.create["ikey"])


class _WorkflowTaskStore(RemoteTaskStore):
    def claim(self, **kwargs: Any) -> InvokeMsg | ResumeMsg:
        message = super().claim(**kwargs)
        if isinstance(message, ResumeMsg):
            return ResumeMsg(
                root_durable_promise=message.root_durable_promise,
                leaf_durable_promise=as_seen_by_workflow(message.leaf_durable_promise),
            )
        return message


_ERROR_CODES = {400: "STORE_PAYLOAD", 401: "STORE_UNAUTHORIZED", 403: "STORE_FORBIDDEN",
                404: "STORE_NOT_FOUND", 409: "STORE_ALREADY_EXISTS"}


class _CallbackStore(RemoteCallbackStore):
    """The SDK's callback store, for a callback the server holds already: a workflow replayed
    here after a drop awaits what its earlier run awaited, under the same callback id, and the
    server answers that with no callback and the promise pending. SDK 0.4.10 takes that for a
    settled promise: its assertion dropped the replay at every claim until the promise settled
    (tests/test_engine_unit.py::test_a_callback_registered_before_is_awaited). It is awaited,
    and the callback the server holds resumes the workflow."""

    def create(self, **kwargs: Any) -> tuple[DurablePromiseRecord, CallbackRecord | None]:
        promise, callback = super().create(**kwargs)
        if callback is None and promise.state == "PENDING":
            callback = CallbackRecord(callback_id=kwargs["id"], id=kwargs["promise_id"],
                                      timeout=kwargs["timeout"],
                                      created_on=int(time.time() * 1000))
        return promise, callback


class FencedStore(RemoteStore):
    """The SDK's store for a worker: every write is fenced by the claim it is made under.

    SDK 0.4.10 retries a call forever while the server is down, then sends it whenever the
    server is back, although the claim it works under may have expired and gone to another
    worker meanwhile: checkpoints of a stale run overwrite nothing (promises settle once) but
    its task completion gets 403 and ends the process. Here `fence` is asked before every
    attempt and raises ClaimLost once the claim is gone (tests/test_outages.py,
    tests/test_engine_unit.py::test_a_fenced_store_stops_retrying_once_the_claim_is_lost).
    """

    def __init__(self, url: str, timeout_seconds: float) -> None:
        super().__init__(url=url)
        self.fence: Callable[[], None] = lambda: None  # the scheduler sets its own
        self._transport = Transport(self.url, timeout_seconds)
        self.promises = _WorkflowPromiseStore(self.url, self._call, self._encoder)
        self.tasks = _WorkflowTaskStore(self.url, self._call, self._encoder)
        self.callbacks = _CallbackStore(self.url, self._call, self._encoder)

    def _call(self, req: requests.Request) -> Answer:  # type: ignore[override]
        while True:
            self.fence()
            try:
                response = self._transport.send(req)
            except Unreachable as exc:
                _log.warning("engine unreachable (%s), retrying", exc)
            else:
                if response.ok:
                    return response
                code = _ERROR_CODES.get(response.status_code)
                if code is not None:
                    raise ResonateError(f"{response.status_code} from the engine", code,
                                        response.text[:200])
                _log.warning("engine answered %s, retrying", response.status_code)
            time.sleep(1)


@dataclasses.dataclass(frozen=True)
class Bound:
    """A command for one incarnation of a record.

    SDK 0.4.10 names commands by record id only. Once a workflow is dropped (its claim lost)
    and replayed under a new claim, the same ids name new records, and a late result of the
    old run (a step finishing, a retry timer) would advance the new run. The scheduler drops a
    command whose record is no longer the one it was issued for (tests/test_outages.py).
    """

    command: Any
    record: Any


class BindingProcessor(Processor):
    """The SDK's step thread pool, whose results are Bound to the record that ran them.

    It also times each step it runs (only real runs come here: a replay reads a completed
    step's checkpoint) and binds its job's log fields, so that a job a step starts
    (jobs.start) joins the same trace.

    A step that waited for a thread does not start once its run was dropped or its claim is
    lost (`may_run`): another worker may have run it and checkpointed it meanwhile
    (tests/test_outages.py::test_a_step_queued_when_its_claim_is_lost_never_starts).
    """

    def __init__(self, records: dict[str, Any], may_run: Callable[[str], bool],
                 workers: int = 4) -> None:
        super().__init__(workers)
        self._records = records
        self._may_run = may_run  # whether a workflow (by root id) still holds its claim
        self._bound: Queue[tuple[Any, Any]] = Queue()

    def enqueue(self, sqe: Any) -> None:
        self._bound.put((sqe, self._records.get(sqe.id)))

    def start(self, cmd_queue: CommandQ, pid: str) -> None:
        for _ in range(self._workers):
            thread = Thread(target=self._run, args=(cmd_queue,), daemon=True)
            self._threads.add(thread)
            thread.start()

    def _run(self, cmd_queue: CommandQ) -> None:
        while True:
            sqe, record = self._bound.get()
            root = record.root() if record is not None else None
            result: Result[Any, Exception]
            if root is not None and (self._records.get(sqe.id) is not record
                                     or not self._may_run(root.id)):
                # The scheduler drops the run (or discards this for a dropped one).
                cmd_queue.put(Bound(Complete(sqe.id, Err(ClaimLost(root.id))), record))
                continue
            with logs.bound(**(job_fields(root.id, root.durable_promise)
                                 if root is not None else {})):
                started = time.perf_counter()
                try:
                    result = Ok(sqe.thunk())
                except Exception as exc:  # the step's failure is its result
                    result = Err(exc)
            if root is not None:
                metrics.STEP_SECONDS.labels(function_of(root), function_of(record)).observe(
                    time.perf_counter() - started)
            cmd_queue.put(Bound(Complete(sqe.id, result), record))  # type: ignore[arg-type]


class BindingDelayQueue(DelayQueue):
    """The SDK's retry timer, whose Invokes are Bound to the record that failed."""

    def __init__(self, records: dict[str, Any]) -> None:
        super().__init__()
        self._records = records

    def enqueue(self, item: Invoke, delay: float) -> None:
        self._inq.put((Bound(item, self._records.get(item.id)), delay))  # type: ignore[arg-type]
