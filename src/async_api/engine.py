"""The one module that calls the Resonate SDK (resonate-sdk 0.4.10 against server v0.7.0).

The gateway and the workers speak to this module only, so that a new engine version touches this
file and nothing else. Two halves:

* `Engine` is what the gateway uses: promise create-with-invoke, get, settle, search. It makes
  exactly one HTTP attempt per call with a timeout (the SDK's own store retries forever) and starts
  no threads, so it is safe in gunicorn's pre-fork workers.
* `run_worker` starts a worker node; `call`, `start`, `step`, `signal` and `sleep` are what the
  durable functions of the `workers` package yield.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import socket
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from resonate import utils as sdk_utils
from resonate.cmd_queue import Claim, CommandQ
from resonate.collections import FunctionRegistry
from resonate.dataclasses import DurablePromise
from resonate.dependencies import Dependencies
from resonate.encoders import Base64Encoder, JsonEncoder
from resonate.errors import ResonateError
from resonate.resonate import Resonate
from resonate.scheduler.scheduler import Scheduler
from resonate.stores.record import (
    DurablePromiseRecord,
    InvokeMsg,
    ResumeMsg,
    TaskRecord,
    Value,
)
from resonate.stores.remote import RemotePromiseStore, RemoteStore, RemoteTaskStore
from resonate.targets import poll
from resonate.task_sources.poller import Poller

_log = logging.getLogger(__name__)

# Marks the promises the gateway created as jobs, so that listing jobs skips workflow steps.
JOB_TAG = "async-api:job"

# Job states as the product names them, from the server's promise states.
PENDING = "pending"
RESOLVED = "resolved"
REJECTED = "rejected"
CANCELED = "canceled"
TIMEDOUT = "timedout"
_STATES = {
    "PENDING": PENDING,
    "RESOLVED": RESOLVED,
    "REJECTED": REJECTED,
    "REJECTED_CANCELED": CANCELED,
    "REJECTED_TIMEDOUT": TIMEDOUT,
}


class EngineError(Exception):
    """Base of every error this module raises."""


class EngineUnavailable(EngineError):
    """The Resonate server did not answer in time (down, restarting, overloaded)."""


class PromiseNotFound(EngineError):
    """No promise has this id."""


class PromiseConflict(EngineError):
    """A promise with this id exists with a different idempotency key (other arguments)."""


class PromiseAlreadySettled(EngineError):
    """The promise was already settled another way (e.g. resolved, then a cancel arrives)."""


class EngineRejected(EngineError):
    """The server refused the request as invalid."""


class ReservedKey(EngineRejected):
    """A value holds an object with the key "__type", which the SDK decodes by importing and
    calling the class it names: in a worker, that would run code of the client's choosing."""


RESERVED_KEY = "__type"


def check_value(value: Any) -> None:
    """Raises ReservedKey if any object nested in `value` has the SDK's reserved key."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if RESERVED_KEY in item:
                raise ReservedKey(f'objects may not have the key "{RESERVED_KEY}"')
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


class JobSettledElsewhere(Exception):
    """What a workflow sees for a promise that was canceled or timed out under it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Promise:
    """A durable promise as the gateway sees it, decoded to plain JSON values."""

    id: str
    state: str
    value: Any
    tags: dict[str, str]
    created_on: int
    completed_on: int | None

    @property
    def pending(self) -> bool:
        return self.state == PENDING


def idempotency_key(*parts: Any) -> str:
    """A stable key for a call: the same arguments always give the same key."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _decode_json(raw: str | None) -> Any:
    """Plain JSON decoding: never imports the classes named in error payloads."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _describe_error(value: Any) -> Any:
    """Turns the SDK's encoded exception into {"type", "message"} for HTTP clients."""
    if isinstance(value, dict) and "__type" in value:
        attributes = value.get("attributes") or {}
        return {
            "type": str(value["__type"]).rsplit(".", 1)[-1],
            "message": attributes.get("message", ""),
            **{k: v for k, v in attributes.items() if k != "message"},
        }
    return value


def _to_promise(record: DurablePromiseRecord) -> Promise:
    state = _STATES.get(record.state, record.state.lower())
    value = _decode_json(record.value.data)
    if state == REJECTED:
        value = _describe_error(value)
    return Promise(
        id=record.id,
        state=state,
        value=value,
        tags=record.tags or {},
        created_on=record.created_on,
        completed_on=record.completed_on,
    )


class _SessionPool:
    """Keep-alive sessions, each lent to one call at a time, for threads and greenlets alike.

    requests' Session is not safe to share between concurrent calls. A session per thread
    (threading.local) becomes a session per greenlet under gevent, that is one new connection to
    the server per client connection; lending idle sessions keeps connections alive across
    requests either way. At most `max_idle` are kept: a burst does not leave a crowd of idle
    connections behind.
    """

    def __init__(self, max_idle: int = 32) -> None:
        self._idle: list[requests.Session] = []  # list.pop/append are atomic: no lock needed
        self._max_idle = max_idle

    @contextlib.contextmanager
    def lend(self) -> Iterator[requests.Session]:
        try:
            session = self._idle.pop()  # the most recently used: its connection is warm
        except IndexError:
            session = requests.Session()
        try:
            yield session
        finally:
            if len(self._idle) < self._max_idle:
                self._idle.append(session)
            else:
                session.close()


class Engine:
    """The gateway's handle on the Resonate server's promise store."""

    def __init__(self, url: str, timeout_seconds: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._sessions = _SessionPool()  # shared by all the requests a gunicorn worker serves
        self._encoder = Base64Encoder()
        self._json = JsonEncoder()
        self._promises = RemotePromiseStore(self.url, self._call_once, self._encoder)

    def _call_once(self, request: requests.Request) -> requests.Response:
        """One attempt, mapped to this module's errors (the SDK would retry 5xx forever)."""
        try:
            with self._sessions.lend() as session:
                response = session.send(request.prepare(), timeout=self._timeout)
        except requests.RequestException as exc:
            raise EngineUnavailable(f"Resonate server unreachable: {exc}") from exc
        if response.ok:
            return response
        if response.status_code == 404:
            raise PromiseNotFound(request.url)
        if response.status_code == 409:
            raise PromiseConflict(request.url)
        if response.status_code == 403:
            raise PromiseAlreadySettled(request.url)
        if response.status_code < 500:
            raise EngineRejected(f"{response.status_code}: {response.text[:200]}")
        raise EngineUnavailable(f"Resonate server answered {response.status_code}")

    def _sdk(self, operation: Callable[..., DurablePromiseRecord], **kwargs: Any) -> Promise:
        try:
            return _to_promise(operation(**kwargs))
        except ResonateError as exc:  # raised by the SDK itself, e.g. on encoding
            raise EngineRejected(str(exc)) from exc

    def invoke(
        self,
        promise_id: str,
        func: str,
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        group: str,
        timeout_seconds: int,
        tags: dict[str, str] | None = None,
    ) -> Promise:
        """Creates the promise that runs `func` on a worker of `group`, or returns the existing one.

        Same id and same arguments return the stored promise (no second run); same id with other
        arguments raises PromiseConflict.
        """
        args = list(args)
        kwargs = kwargs or {}
        check_value([args, kwargs])
        return self._sdk(
            self._promises.create,
            id=promise_id,
            ikey=idempotency_key(func, args, kwargs),
            strict=False,
            headers=None,
            data=self._json.encode({"func": func, "args": args, "kwargs": kwargs}),
            timeout=int(time.time() * 1000) + timeout_seconds * 1000,
            tags={**(tags or {}), JOB_TAG: "true", "resonate:invoke": poll(group)},
        )

    def create_signal(self, promise_id: str, timeout_seconds: int) -> Promise:
        """The promise a workflow awaits with `signal()` and a webhook settles.

        Created with the key the SDK uses for the same promise, so whichever of the gateway and
        the workflow comes first creates it and the other gets the same promise back. Unanswered,
        it times out like a job (and the waiting job fails), rather than waiting forever.
        """
        return self._sdk(
            self._promises.create,
            id=promise_id,
            ikey=sdk_utils.string_to_uuid(promise_id),
            strict=False,
            headers=None,
            data=None,
            timeout=int(time.time() * 1000) + timeout_seconds * 1000,
            tags={},
        )

    def get(self, promise_id: str) -> Promise:
        return self._sdk(self._promises.get, id=quote(promise_id, safe=""))

    def resolve(self, promise_id: str, value: Any) -> Promise:
        """Resolves once; a replay with the same value returns the settled promise unchanged."""
        return self._settle(self._promises.resolve, promise_id, value)

    def reject(self, promise_id: str, value: Any) -> Promise:
        return self._settle(self._promises.reject, promise_id, value)

    def cancel(self, promise_id: str, value: Any = None) -> Promise:
        return self._settle(self._promises.cancel, promise_id, value)

    def _settle(
        self, operation: Callable[..., DurablePromiseRecord], promise_id: str, value: Any
    ) -> Promise:
        check_value(value)  # a workflow awaiting this promise decodes it
        return self._sdk(
            operation,
            id=quote(promise_id, safe=""),
            ikey=idempotency_key(operation.__name__, promise_id, value),
            strict=False,
            headers=None,
            data=self._json.encode(value),
        )

    def search_jobs(
        self, state: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Promise], str | None]:
        """Jobs newest first, one page; the SDK 0.4.10 has no search call.

        The server filters by pending, resolved or rejected only: canceled and timed out jobs
        are in `rejected` pages, so callers filter those pages further.
        """
        params: dict[str, Any] = {"id": "*", "limit": limit, f"tags[{JOB_TAG}]": "true"}
        if state:
            params["state"] = {CANCELED: REJECTED, TIMEDOUT: REJECTED}.get(state, state)
        if cursor:
            params["cursor"] = cursor
        response = self._call_once(
            requests.Request("get", f"{self.url}/promises", params=params)
        )
        body = response.json()
        promises = [_to_promise(DurablePromiseRecord.decode(p, self._encoder))
                    for p in body.get("promises") or []]
        return promises, body.get("cursor")

    def ping(self) -> None:
        """Raises EngineUnavailable unless the server answers."""
        self._call_once(
            requests.Request("get", f"{self.url}/promises", params={"id": "*", "limit": 1})
        )


# --- the worker half ------------------------------------------------------------------------


class _ReconnectingPoller(Poller):
    """The SDK's poller, but it survives a server killed mid-stream, waits for `open`, can stop.

    SDK 0.4.10 reconnects only on ConnectionError; a stream cut by a SIGKILLed server raises
    ChunkedEncodingError, which ends the whole worker process (os._exit). It polls as soon as the
    node is built, before functions are registered: a task arriving then ends it too. Its stop()
    raises NotImplementedError; this one closes the stream so the server sends new tasks elsewhere.
    """

    def __init__(self, url: str, group: str) -> None:
        super().__init__(url=url, group=group)
        self.open = threading.Event()
        self._queued: OrderedDict[tuple[str, int], None] = OrderedDict()
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

    def _run(self, cmd_queue: CommandQ, pid: str) -> None:
        self.open.wait()
        url = f"{self._url}/{self._group}/{pid}"
        while not self._stopping.is_set():
            try:
                with requests.get(url, stream=True, timeout=(5, None)) as response:
                    self._response = response
                    if response.ok:
                        self._enqueue_tasks(response, cmd_queue)
            except (requests.RequestException, AttributeError, ValueError) as exc:
                if self._stopping.is_set():
                    return  # closed by stop(); urllib3 may surface that oddly
                _log.warning("poller: connection to %s lost (%s), reconnecting", url, exc)
            time.sleep(1)

    def _enqueue_tasks(self, response: requests.Response, cmd_queue: CommandQ) -> None:
        for line in response.iter_lines(chunk_size=None, decode_unicode=True):
            if self._stopping.is_set():
                return  # unclaimed: the server offers it again to a live worker
            if not line or not line.strip().startswith("data:"):
                continue
            message = self._encoder.decode(line.strip()[5:])
            if "task" in message:
                task = TaskRecord.decode(message["task"], encoder=self._encoder)
                if self._first_time(task):
                    cmd_queue.put(Claim(task))

    def _first_time(self, task: TaskRecord) -> bool:
        """The server re-sends a task it has not seen claimed yet (every task-enqueue-delay).

        A busy worker would queue each copy and claim them all, the late ones in vain: its
        backlog then grows faster than it drains. One claim per task and counter is enough.
        """
        key = (task.task_id, task.counter)
        if key in self._queued:
            return False
        self._queued[key] = None
        if len(self._queued) > 100_000:
            self._queued.popitem(last=False)
        return True


def _as_seen_by_workflow(record: DurablePromiseRecord) -> DurablePromiseRecord:
    """A canceled or timed-out promise, shown to the SDK as a rejection it can handle.

    SDK 0.4.10 asserts that a settled promise is resolved or rejected: meeting a canceled one
    (a job canceled from the gateway while its worker ran) ends the worker process.
    """
    if record.state not in ("REJECTED_CANCELED", "REJECTED_TIMEDOUT"):
        return record
    reason = JobSettledElsewhere(f"{record.id} was {_STATES[record.state]} before it finished")
    return dataclasses.replace(
        record, state="REJECTED", value=Value(data=JsonEncoder().encode(reason), headers=None)
    )


class _WorkflowPromiseStore(RemotePromiseStore):
    """The SDK's promise store, tolerant of promises settled by someone else (a cancel)."""

    def create(self, **kwargs: Any) -> DurablePromiseRecord:
        return _as_seen_by_workflow(super().create(**kwargs))

    def get(self, **kwargs: Any) -> DurablePromiseRecord:
        return _as_seen_by_workflow(super().get(**kwargs))

    def resolve(self, **kwargs: Any) -> DurablePromiseRecord:
        return self._settle(super().resolve, kwargs)

    def reject(self, **kwargs: Any) -> DurablePromiseRecord:
        return self._settle(super().reject, kwargs)

    def _settle(
        self, operation: Callable[..., DurablePromiseRecord], kwargs: dict[str, Any]
    ) -> DurablePromiseRecord:
        try:
            return _as_seen_by_workflow(operation(**kwargs))
        except ResonateError as exc:
            if exc.code != "STORE_FORBIDDEN":  # 403: settled already, e.g. canceled
                raise
            return self.get(id=kwargs["id"])


class _WorkflowTaskStore(RemoteTaskStore):
    def claim(self, **kwargs: Any) -> InvokeMsg | ResumeMsg:
        message = super().claim(**kwargs)
        if isinstance(message, ResumeMsg):
            return ResumeMsg(
                root_durable_promise=message.root_durable_promise,
                leaf_durable_promise=_as_seen_by_workflow(message.leaf_durable_promise),
            )
        return message


class _WorkflowStore(RemoteStore):
    def __init__(self, url: str) -> None:
        super().__init__(url=url)
        self.promises = _WorkflowPromiseStore(self.url, self._call, self._encoder)
        self.tasks = _WorkflowTaskStore(self.url, self._call, self._encoder)


CLAIM_TTL_MS = 5_000  # what SDK 0.4.10 claims with; heartbeats come every 2 s
HEARTBEAT_SECONDS = 2.0


class _Scheduler(Scheduler):
    """The SDK's scheduler with claims that cannot be orphaned.

    SDK 0.4.10 claims every task under the node's one process id and heartbeats that id. When
    the server dies after committing a claim but before answering, the SDK's retry gets 403
    (already claimed) and the process exits; and had it survived, its heartbeats would keep the
    orphaned claim alive forever: a job stuck for good. Here each claim gets its own process id
    and only tasks this node knows it holds are heartbeated, so an orphaned claim expires after
    its ttl and the server delivers the task again. A refused claim (403: claimed or done
    elsewhere, or a duplicate delivery) is skipped instead of ending the process.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._held_lock = threading.Lock()
        self._held: dict[str, str] = {}  # task id -> the process id it was claimed under

    @property
    def held(self) -> int:
        return len(self._held)

    def _hold(self, task_id: str, claim_pid: str | None) -> None:
        with self._held_lock:
            if claim_pid is None:
                self._held.pop(task_id, None)
            else:
                self._held[task_id] = claim_pid

    def _handle_claim(self, claim: Claim) -> list[Any]:
        task = claim.record
        claim_pid = f"{self._pid}.{task.task_id}.{task.counter}"
        self._hold(task.task_id, claim_pid)  # before: the claim may complete the task at once
        try:
            message = self._store.tasks.claim(task_id=task.task_id, counter=task.counter,
                                              pid=claim_pid, ttl=CLAIM_TTL_MS)
        except ResonateError as exc:
            self._hold(task.task_id, None)
            if exc.code not in ("STORE_FORBIDDEN", "STORE_NOT_FOUND"):
                raise
            _log.warning("task %s (counter %s) is not claimable (claimed or done elsewhere); "
                         "skipped", task.task_id, task.counter)
            return []
        if isinstance(message, InvokeMsg):
            return self._process_invoke_msg(message, task)
        return self._process_resume_msg(message, task)

    def _complete_task(self, id: str) -> None:
        task_id = self._records[id].get_task().task_id
        super()._complete_task(id)
        self._hold(task_id, None)

    def _heartbeat(self) -> None:
        """Keeps exactly the held claims alive; any error waits for the next beat."""
        while True:
            with self._held_lock:
                claim_pids = list(self._held.values())
            for claim_pid in claim_pids:
                try:
                    requests.post(f"{self._store.url}/tasks/heartbeat",
                                  json={"processId": claim_pid}, timeout=HEARTBEAT_SECONDS)
                except requests.RequestException as exc:
                    _log.warning("heartbeat failed (%s)", exc)
                    break
            time.sleep(HEARTBEAT_SECONDS)


class _Node(Resonate):
    """Resonate with this module's scheduler (the SDK builds its own in __init__)."""

    def __init__(self, store: RemoteStore, task_source: Poller) -> None:  # replaces the SDK init
        self._deps = Dependencies()
        self._registry = FunctionRegistry()
        self._store = store
        self._scheduler = _Scheduler(deps=self._deps, pid=uuid.uuid4().hex,
                                     registry=self._registry, store=store,
                                     task_source=task_source)
        self._scheduler.start()


@dataclass
class Worker:
    """A running worker node: it polls its group until drained."""

    node: _Node
    poller: _ReconnectingPoller
    scheduler: _Scheduler

    def held_tasks(self) -> int:
        return self.scheduler.held

    def drain(self, grace_seconds: float) -> bool:
        """Stops taking tasks, then waits up to `grace_seconds` for the held ones to finish.

        Returns whether all finished. A task still held when the process exits is not lost: its
        claim expires (5 s ttl without heartbeats) and the server delivers it to another worker,
        which replays it; only steps that had not completed run again.
        """
        self.poller.stop()
        deadline = time.monotonic() + grace_seconds
        while self.scheduler.held and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.scheduler.held


def run_worker(
    group: str, functions: Iterable[Callable[..., Any]], url: str, poll_url: str
) -> Worker:
    """Starts a Resonate node that polls `group` and runs the registered durable functions."""
    poller = _ReconnectingPoller(url=poll_url, group=group)
    node = _Node(store=_WorkflowStore(url), task_source=poller)
    for function in functions:
        node.register(function)
    poller.open.set()  # only now may tasks arrive
    return Worker(node, poller, node._scheduler)


def call(ctx: Any, group: str, func: str, *args: Any, promise_id: str | None = None) -> Any:
    """Yield this to run `func` on a worker of `group` and wait for its result (await chain)."""
    return ctx.rfc(func, *args).options(id=promise_id, send_to=poll(group))


def start(ctx: Any, group: str, func: str, *args: Any, promise_id: str | None = None) -> Any:
    """Yield this to start `func` on `group` without waiting; yield the handle later to await."""
    return ctx.rfi(func, *args).options(id=promise_id, send_to=poll(group))


def step(ctx: Any, func: Callable[..., Any], *args: Any) -> Any:
    """Yield this to run a checkpointed local step: once it completed, a replay skips it."""
    return ctx.lfc(func, *args)


def signal(ctx: Any, promise_id: str) -> Any:
    """Yield this to wait, durably and for as long as it takes, until someone settles the
    promise `promise_id` (e.g. a webhook); evaluates to the value it was resolved with."""
    return ctx.rfc(DurablePromise(id=promise_id, timeout=sys.maxsize))


def sleep(ctx: Any, seconds: int) -> Any:
    """Yield this to sleep durably: a worker restarted mid-sleep wakes at the same time."""
    return ctx.sleep(seconds)
