"""The gateway's client of the Resonate server's promise store (and the errors it raises).

It makes exactly one HTTP attempt per call with a timeout (the SDK's own store retries forever)
and starts no threads until a long-poll first waits in the serving process (`SettleWatch`), so it
is safe in gunicorn's pre-fork workers and greenlets alike.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from resonate import utils as sdk_utils
from resonate.encoders import Base64Encoder, JsonEncoder
from resonate.errors import ResonateError
from resonate.stores.record import DurablePromiseRecord
from resonate.stores.remote import RemotePromiseStore
from resonate.targets import poll

from async_api import metrics
from async_api.engine.transport import (
    MAX_CONNECTIONS,
    Answer,
    Transport,
    Unreachable,
    call_name,
)
from async_api.newest import Newest

_log = logging.getLogger(__name__)

# Marks the promises the gateway created as jobs, so that listing jobs skips workflow steps.
JOB_TAG = "async-api:job"
# A job's W3C trace context (async_api.logs): the worker's log lines about it carry its trace id.
TRACEPARENT_TAG = "async-api:traceparent"
# On a workflow step's promise: the function the step ran (the SDK stores nothing about it).
STEP_TAG = "async-api:step"
# The STEP_TAG of a step that reports progress (workflow.progress): its value is the report.
PROGRESS_STEP = "async-api:progress"
# The SDK's tags: the worker group a call runs on ("poll://<group>"), and a durable sleep.
INVOKE_TAG = "resonate:invoke"
SLEEP_TAG = "resonate:timeout"

# Job states as the product names them, from the server's promise states.
PENDING = "pending"
RESOLVED = "resolved"
REJECTED = "rejected"
CANCELED = "canceled"
TIMEDOUT = "timedout"
SERVER_STATES = {
    "PENDING": PENDING,
    "RESOLVED": RESOLVED,
    "REJECTED": REJECTED,
    "REJECTED_CANCELED": CANCELED,
    "REJECTED_TIMEDOUT": TIMEDOUT,
}


def job_tags(group: str) -> dict[str, str]:
    """The tags that make a promise a job: listed as one, and run on a worker of `group`."""
    return {JOB_TAG: "true", INVOKE_TAG: poll(group)}


class EngineError(Exception):
    """Base of every error this module raises."""


class EngineUnavailable(EngineError):
    """The Resonate server did not answer in time (down, restarting, overloaded)."""


class EngineBusy(EngineUnavailable):
    """This process already has as many calls in flight as it may: the caller should back off."""


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


@dataclass(frozen=True)
class Promise:
    """A durable promise as the gateway sees it, decoded to plain JSON values."""

    id: str
    state: str
    value: Any
    tags: dict[str, str]
    # The server's clock, in ms since the epoch: when the promise was created and settled
    # (None while pending). Status monitors show them as createdDateTime and the like.
    created_on: int | None = None
    completed_on: int | None = None
    # The durable function a job or a child call runs, and its arguments (None for others).
    function: str | None = None
    args: list[Any] | None = None

    @property
    def group(self) -> str | None:
        """The worker group a job or a child call runs on."""
        target = self.tags.get(INVOKE_TAG, "")
        return target.removeprefix("poll://").rpartition("@")[2] or None

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
            "message": attributes.get("message", value.get("message", "")),
            **{k: v for k, v in attributes.items() if k != "message"},
        }
    return value


# Why a job that was canceled or timed out ended, when what the server stored says nothing:
# its error then reads like a worker's ({"type", "message"}) in every view.
_ENDED_WITHOUT_ERROR = {
    CANCELED: {"type": "Canceled", "message": "The job was canceled."},
    TIMEDOUT: {"type": "TimedOut", "message": "The job did not finish before its deadline."},
}


def message_of(value: Any) -> str | None:
    """The message of an error value (a dict with a non-empty "message"), if it has one."""
    message = value.get("message") if isinstance(value, dict) else None
    return message if isinstance(message, str) and message else None


def _ended_without_error(state: str, value: Any) -> dict[str, Any]:
    """A canceled or timed-out job's error: the server stores none on a timeout, and a cancel
    stores what its caller sent (the gateway: a message)."""
    error = dict(_ENDED_WITHOUT_ERROR[state])
    error["message"] = message_of(value) or error["message"]
    return error


def _to_promise(record: DurablePromiseRecord) -> Promise:
    state = SERVER_STATES.get(record.state, record.state.lower())
    value = _decode_json(record.value.data)
    if state == REJECTED:
        value = _describe_error(value)
    elif state in _ENDED_WITHOUT_ERROR:
        value = _ended_without_error(state, value)
    call = _call(record)
    return Promise(
        id=record.id,
        state=state,
        value=value,
        tags=record.tags or {},
        created_on=record.created_on,
        completed_on=record.completed_on,
        function=call.get("func"),
        args=call.get("args"),
    )


def _call(record: DurablePromiseRecord) -> dict[str, Any]:
    """What a job's (or a child call's) promise invokes: its param is {"func", "args",
    "kwargs"}; {} for other promises."""
    if INVOKE_TAG not in (record.tags or {}):
        return {}
    param = _decode_json(record.param.data)
    return param if isinstance(param, dict) else {}


# The most steps GET /jobs/{id}/steps lists (a fan-out's children count as steps).
MAX_STEPS = 1000
STEP_PAGE_SIZE = 100
# The most pages of the server's search a job's steps are read from. The id pattern `<id>.*`
# also matches what is no direct child: a child's own steps and, since "_" is a LIKE wildcard
# there, other jobs' promises (`a_b.*` matches `a-b.1`, `aXb.2`...), skipped but read. Bounded
# by the children found only, one GET /jobs/a___.../steps read every promise of that shape in
# the store, 100 a call, on one request.
MAX_STEP_PAGES = MAX_STEPS // STEP_PAGE_SIZE
# A job's last progress report is the first its search finds: a small page, read on every
# view of a running job (a listing's too), and a next one only when other jobs' fill it; at
# most PROGRESS_PAGES, since a listing of 100 running jobs reads one search for each.
PROGRESS_PAGE_SIZE = 10
PROGRESS_PAGES = 3


def _is_child(promise_id: str, parent_id: str) -> bool:
    """A direct child's id is "<parent>.<n>"; the server's id pattern also matches deeper ones
    (and, since "_" is a LIKE wildcard there, ids that only look alike)."""
    rest = promise_id.removeprefix(parent_id + ".")
    return rest != promise_id and "." not in rest


@dataclass(frozen=True)
class Progress:
    """The last progress a job's workflow reported (workflow.progress), as stored."""

    fraction: float
    message: str
    reported_on: int | None  # the server's clock, ms since the epoch


def _progress(promise: Promise) -> Progress | None:
    value = promise.value if isinstance(promise.value, dict) else {}
    fraction = value.get("fraction")
    if not isinstance(fraction, int | float):
        return None
    return Progress(float(fraction), str(value.get("message") or ""), promise.completed_on)


# Without the server's notice (SettleWatch not connected), a long-poll reads the promise again
# after these pauses (seconds): a job that settles soon is seen within a few ms, one that takes
# long costs at most 20 reads a second.
WAIT_POLL_FIRST = 0.005
WAIT_POLL_MAX = 0.05
# With the notice, it reads again only this often, in case a notice was lost (a reconnect).
WAIT_SAFETY_READ = 1.0
# The poll-stream group the gateway's processes listen on; no worker serves it.
WATCH_GROUP = "async-api-gateway"

SETTLED_CACHE_SIZE = 10_000  # per gateway process: every poll of a finished job after the first


class SettleWatch:
    """Tells the long-polls of this process when the server settles the promise they wait for.

    Polling the server for each held request would cost hundreds of reads a second per hundred
    long-polls and answer tens of ms late. Instead, each waited-for promise gets a callback on
    the server addressed to this process's poll stream (one per promise and process, however
    many requests wait on it). When the promise settles, the server sends a task on the stream
    within a few ms; claiming it returns the settled promise, completing it stops the server
    from sending it again. One listener (a greenlet under gevent) per process reads the stream
    and reconnects when it drops; waiters also read the promise every WAIT_SAFETY_READ, so a
    lost notice only delays an answer.
    """

    def __init__(self, engine: Engine, poll_url: str) -> None:
        self._engine = engine
        self._poll_url = poll_url.rstrip("/")
        self._lock = threading.Lock()
        self._pid = 0  # the process the listener runs in: a forked child starts its own
        self._process_id = ""
        self._connected = threading.Event()
        self._waiters: dict[str, set[threading.Event]] = {}
        self._settled: dict[str, Promise] = {}

    @property
    def process_id(self) -> str:
        return self._process_id

    def connected(self, first_within: float) -> bool:
        """Whether the listener is connected; the first call in a process starts it and gives
        it `first_within` seconds (later calls never wait: an unreachable stream means polling)."""
        with self._lock:
            starting = self._pid != os.getpid()
            if starting:
                self._pid, self._process_id = os.getpid(), f"gw-{uuid.uuid4().hex}"
                self._connected = threading.Event()
                self._waiters, self._settled = {}, {}
                threading.Thread(target=self._listen, name="settle-watch", daemon=True).start()
        return self._connected.wait(first_within) if starting else self._connected.is_set()

    def subscribe(self, promise_id: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(promise_id, set()).add(event)
        return event

    def unsubscribe(self, promise_id: str, event: threading.Event) -> Promise | None:
        """Drops a waiter; the settled promise if a notice brought it."""
        with self._lock:
            waiters = self._waiters.get(promise_id, set())
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(promise_id, None)
                return self._settled.pop(promise_id, None)
            return self._settled.get(promise_id)

    def settled(self, promise_id: str) -> Promise | None:
        return self._settled.get(promise_id)

    def release_all(self) -> None:
        """Wakes every waiter (shutdown)."""
        with self._lock:
            for waiters in self._waiters.values():
                for event in waiters:
                    event.set()

    def _listen(self) -> None:
        process_id, connected = self._process_id, self._connected
        while True:
            try:
                with requests.get(f"{self._poll_url}/{WATCH_GROUP}/{process_id}", stream=True,
                                  timeout=(self._engine.timeout_seconds, None)) as stream:
                    stream.raise_for_status()
                    connected.set()
                    for line in stream.iter_lines():
                        if line.startswith(b"data:"):
                            threading.Thread(target=self._notice, args=(line[5:],),
                                             daemon=True).start()
            except (requests.RequestException, ValueError):
                pass
            connected.clear()
            time.sleep(0.5)

    def _notice(self, data: bytes) -> None:
        """One task from the stream: claim it (the claim returns the settled promise), wake the
        waiters, then complete it so that the server does not send it again."""
        try:
            task = json.loads(data)["task"]
            promise = self._engine.claim_settled(task["id"], task["counter"], self._process_id)
        except (EngineError, ValueError, KeyError, TypeError):
            return  # the waiters' safety read catches up
        if promise is not None:
            with self._lock:
                waiters = self._waiters.get(promise.id)
                if waiters:
                    self._settled[promise.id] = promise
                    for event in waiters:
                        event.set()
        with contextlib.suppress(EngineError):  # unfinished, it expires with its callback
            self._engine.complete_task(task["id"], task["counter"])


# How long a call may wait for one of the `max_calls` slots before EngineBusy: well under the
# 100 ms in which an overloaded gateway should tell a client to come back later.
BUSY_WAIT_SECONDS = 0.05


class ForeignCursor(EngineRejected):
    """A search cursor made for another search than the one it is passed to."""


# The most promises a cursor may ask the server for in one page (the gateway asks at most 100).
MAX_CURSOR_LIMIT = 100


def _check_cursor(cursor: str, id_pattern: str, tags: dict[str, str]) -> None:
    """Raises ForeignCursor unless `cursor` goes on with the search asked (`id_pattern`, `tags`).

    Why: server v0.7.0 runs the search its cursor holds (a JWT whose claim `Next` is the whole
    next request, signed with a fixed key) and ignores the query's own filters, so a cursor
    from another principal's listing, or a forged one without the owner tag, would list jobs
    the caller may not see (test_auth.py::test_a_cursor_lists_only_the_jobs_of_whoever_uses_it).
    """
    try:
        claims = cursor.split(".")[1]
        search = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["Next"]
        limit = search["limit"]
        same = (search["id"] == id_pattern and search["tags"] == tags
                and isinstance(limit, int) and 0 < limit <= MAX_CURSOR_LIMIT)
    except (IndexError, ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise ForeignCursor(cursor) from exc
    if not same:
        raise ForeignCursor(cursor)


class Engine:
    """The gateway's handle on the Resonate server's promise store.

    At most `max_calls` calls are in flight per process; past that a call waits a moment, then
    raises EngineBusy. Under overload the excess is refused at once, instead of every client
    waiting in a queue that grows as long as the load lasts (README, "Overload").
    """

    def __init__(self, url: str, timeout_seconds: float, max_calls: int = MAX_CONNECTIONS,
                 poll_url: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._transport = Transport(self.url, timeout_seconds)  # shared by all its requests
        self._slots = threading.BoundedSemaphore(max_calls)  # a gevent one once patched
        self._encoder = Base64Encoder()
        self._json = JsonEncoder()
        self._promises = RemotePromiseStore(self.url, self._call_once, self._encoder)
        self._settled: Newest[str, Promise] = Newest(SETTLED_CACHE_SIZE)
        self._watch = SettleWatch(self, poll_url) if poll_url else None
        self._stopping = False  # set on shutdown: waits end at once
        self._down_since: float | None = None  # since when the server has not answered

    @property
    def timeout_seconds(self) -> float:
        return self._timeout

    def _call_once(self, request: requests.Request, *, admitted: bool = False) -> Answer:
        """One attempt, mapped to this module's errors (the SDK would retry 5xx forever);
        `admitted` skips the slots (the readiness probe must answer under overload too). The
        transport measures the call; a refusal for want of a slot is counted here."""
        if not admitted and not self._slots.acquire(timeout=BUSY_WAIT_SECONDS):
            call = call_name(request.method, urlsplit(request.url).path)
            metrics.ENGINE_ERRORS.labels(call, "busy").inc()
            raise EngineBusy(f"{self.url}: too many calls in flight")
        try:
            response = self._transport.send(request)
        except Unreachable as exc:
            self._went_down(str(exc))
            raise EngineUnavailable(f"Resonate server unreachable: {exc}") from exc
        finally:
            if not admitted:
                self._slots.release()
        if response.status_code >= 500:
            self._went_down(f"it answered {response.status_code}")
        else:
            self._came_back()
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

    def _went_down(self, why: str) -> None:
        """Says so once per outage: the requests it fails are only `request` lines with 503,
        which an operator at LOG_LEVEL=WARNING never sees (tests/test_faults.py)."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            _log.warning("Resonate server at %s unavailable (%s): requests that need it "
                         "answer 503 until it is back", self.url, why)

    def _came_back(self) -> None:
        if self._down_since is not None:
            down, self._down_since = time.monotonic() - self._down_since, None
            _log.warning("Resonate server at %s answers again (its first failed call here was "
                         "%.1f s ago)", self.url, down)

    def _sdk(self, operation: Callable[..., DurablePromiseRecord], **kwargs: Any) -> Promise:
        try:
            promise = _to_promise(operation(**kwargs))
        except ResonateError as exc:  # raised by the SDK itself, e.g. on encoding
            raise EngineRejected(str(exc)) from exc
        if not promise.pending:
            self._settled.remember(promise.id, promise)
        return promise

    def invoke(
        self,
        promise_id: str,
        func: str,
        args: Iterable[Any] = (),
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
        kwargs: dict[str, Any] = {}  # the SDK's call format has them; the product passes none
        check_value(args)
        return self._sdk(
            self._promises.create,
            id=promise_id,
            ikey=idempotency_key(func, args, kwargs),  # the same key as stored promises have
            strict=False,
            headers=None,
            data=self._json.encode({"func": func, "args": args, "kwargs": kwargs}),
            timeout=int(time.time() * 1000) + timeout_seconds * 1000,
            tags={**(tags or {}), **job_tags(group)},
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
        """The promise now; a settled one never changes, so it is answered from memory."""
        settled = self._settled.get(promise_id)
        if settled is not None:
            return settled
        return self._sdk(self._promises.get, id=quote(promise_id, safe=""))

    def stop_waiting(self) -> None:
        """Ends every wait of settled_within now, and any later one at once: on SIGTERM the
        held requests answer with the job as it is, instead of holding the graceful shutdown
        (gunicorn.conf.py)."""
        self._stopping = True
        if self._watch is not None:
            self._watch.release_all()

    def settled_within(self, promise: Promise, seconds: float) -> Promise:
        """`promise` as it is once settled, or after `seconds` if it is still pending.

        The server has no blocking read: it is told to notify this process (SettleWatch), and
        without that this reads again after a pause growing from WAIT_POLL_FIRST to
        WAIT_POLL_MAX. Waits yield under gevent (the gateway): a wait holds a greenlet, not a
        thread.
        """
        deadline = time.monotonic() + (0 if self._stopping else seconds)
        if promise.pending and self._watch is not None and self._watch.connected(first_within=1.0):
            return self._notified_within(promise, deadline)
        pause = WAIT_POLL_FIRST
        while promise.pending and not self._stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(pause, left))
            pause = min(pause * 2, WAIT_POLL_MAX)
            promise = self._read_again(promise)
        return promise

    def _read_again(self, promise: Promise) -> Promise:
        """A read during a wait: when this process is at capacity the waiter holds on and
        reads at its next turn, instead of failing a request that asked to wait."""
        try:
            return self.get(promise.id)
        except EngineBusy:
            return promise

    def _notified_within(self, promise: Promise, deadline: float) -> Promise:
        assert self._watch is not None
        event = self._watch.subscribe(promise.id)
        try:
            with contextlib.suppress(EngineBusy):  # no notice then: the safety reads answer
                promise = self._callback(promise.id, self._watch.process_id, deadline)
            while (promise.pending and not self._stopping
                   and (left := deadline - time.monotonic()) > 0):
                if event.wait(min(left, WAIT_SAFETY_READ)):
                    promise = self._watch.settled(promise.id) or self._read_again(promise)
                else:
                    promise = self._read_again(promise)
        finally:
            noticed = self._watch.unsubscribe(promise.id, event)
        if noticed is not None and promise.pending:
            promise = noticed
        if not promise.pending:
            self._settled.remember(promise.id, promise)
        return promise

    def _callback(self, promise_id: str, process_id: str, deadline: float) -> Promise:
        """Asks the server to send a task to this process's stream when the promise settles;
        returns the promise as it is now. One callback per promise, process and second of
        deadline, however many requests wait for it; it expires a little after the wait."""
        expires = int(time.time() * 1000 + (deadline - time.monotonic() + 1) * 1000)
        body = {"id": f"{process_id}-{int(deadline)}", "promiseId": promise_id,
                "rootPromiseId": promise_id, "timeout": expires,
                "recv": {"type": "poll", "data": {"group": WATCH_GROUP, "id": process_id}}}
        response = self._call_once(requests.Request("post", f"{self.url}/callbacks", json=body))
        return self._sdk(DurablePromiseRecord.decode, data=response.json()["promise"],
                         encoder=self._encoder)

    def claim_settled(self, task_id: str, counter: int, process_id: str) -> Promise | None:
        """Claims a task a SettleWatch callback sent; the settled promise it was sent for, or
        None for a task of another kind."""
        claimed = self._call_once(requests.Request(
            "post", f"{self.url}/tasks/claim",
            json={"id": task_id, "counter": counter, "processId": process_id, "ttl": 5000}))
        leaf = (claimed.json().get("promises") or {}).get("leaf") or {}
        if "data" not in leaf:
            return None
        return self._sdk(DurablePromiseRecord.decode, data=leaf["data"], encoder=self._encoder)

    def complete_task(self, task_id: str, counter: int) -> None:
        self._call_once(requests.Request("post", f"{self.url}/tasks/complete",
                                         json={"id": task_id, "counter": counter}))

    def resolve(self, promise_id: str, value: Any) -> Promise:
        """Resolves once; a replay with the same value returns the settled promise unchanged."""
        return self._settle(self._promises.resolve, RESOLVED, promise_id, value)

    def cancel(self, promise_id: str, value: Any = None) -> Promise:
        return self._settle(self._promises.cancel, CANCELED, promise_id, value)

    def _settle(
        self, operation: Callable[..., DurablePromiseRecord], state: str, promise_id: str,
        value: Any,
    ) -> Promise:
        """PromiseAlreadySettled unless the promise ends in `state` by this call or its replay:
        not strict, the server answers a promise that timed out first as it is, with a 200
        (test_timeouts.py::test_a_job_past_its_timeout_ends_timedout_and_the_worker_lives)."""
        check_value(value)  # a workflow awaiting this promise decodes it
        settled = self._sdk(
            operation,
            id=quote(promise_id, safe=""),
            ikey=idempotency_key(operation.__name__, promise_id, value),
            strict=False,
            headers=None,
            data=self._json.encode(value),
        )
        if settled.state != state:
            raise PromiseAlreadySettled(promise_id)
        return settled

    def search_jobs(
        self, state: str | None = None, limit: int = 50, cursor: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> tuple[list[Promise], str | None]:
        """Jobs newest first, one page, only those with `tags` if given.

        The server filters by pending, resolved or rejected only (`state`, as
        listing.engine_state names it): canceled and timed out jobs are in `rejected` pages,
        so callers filter those pages further.
        """
        tags = {**(tags or {}), JOB_TAG: "true"}
        if cursor is not None:
            _check_cursor(cursor, "*", tags)
        return self._search("*", state, tags, limit, cursor)

    def steps(self, job_id: str) -> list[Promise]:
        """The job's workflow steps and child calls (its direct children), oldest first; at
        most MAX_STEPS, from at most MAX_STEP_PAGES pages of the server's search."""
        found = islice(self._children(job_id, None, {}, STEP_PAGE_SIZE, MAX_STEP_PAGES),
                       MAX_STEPS)
        return sorted(found, key=lambda p: (p.created_on or 0, p.id))

    def progress(self, job_id: str) -> Progress | None:
        """The job's last progress report, or None if its workflow reported none yet. Read
        past the pages of other jobs' reports its id pattern matches: with only the first,
        the reports of `a-b` and `aXb` hid those of `a_b` from every view of it."""
        report = next(self._children(job_id, RESOLVED, {STEP_TAG: PROGRESS_STEP},
                                     PROGRESS_PAGE_SIZE, PROGRESS_PAGES), None)
        return None if report is None else _progress(report)

    def _children(
        self, job_id: str, state: str | None, tags: dict[str, str], page_size: int,
        pages: int,
    ) -> Iterator[Promise]:
        """The job's direct children with `state` and `tags`, newest first, from at most
        `pages` pages of the server's search (a page is read only when asked for)."""
        cursor: str | None = None
        for _ in range(pages):
            page, cursor = self._search(f"{job_id}.*", state, tags, page_size, cursor)
            yield from (p for p in page if _is_child(p.id, job_id))
            if cursor is None:
                return

    def _search(
        self, id_pattern: str, state: str | None, tags: dict[str, str], limit: int,
        cursor: str | None,
    ) -> tuple[list[Promise], str | None]:
        """One page of the server's promise search, newest first; SDK 0.4.10 has no search."""
        params: dict[str, Any] = {"id": id_pattern, "limit": limit}
        params.update({f"tags[{key}]": value for key, value in tags.items()})
        if state:
            params["state"] = state
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
        """Raises EngineUnavailable unless the server answers a search as its promise API
        does: a 4xx means RESONATE_URL names something else (the task stream, say), and a
        gateway that cannot start a job is not ready either."""
        try:
            self._call_once(
                requests.Request("get", f"{self.url}/promises", params={"id": "*", "limit": 1}),
                admitted=True,
            )
        except EngineUnavailable:
            raise
        except EngineError as exc:
            _log.error("%s answered a search with %s: is RESONATE_URL the server's promise "
                       "API?", self.url, exc)
            raise EngineUnavailable(f"{self.url} is no promise API") from exc
