"""The gateway's client of the Resonate server's promise store (and the errors it raises).

It makes exactly one HTTP attempt per call with a timeout (the SDK's own store retries forever)
and starts no threads, so it is safe in gunicorn's pre-fork workers and greenlets alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from resonate import utils as sdk_utils
from resonate.encoders import Base64Encoder, JsonEncoder
from resonate.errors import ResonateError
from resonate.stores.record import DurablePromiseRecord
from resonate.stores.remote import RemotePromiseStore
from resonate.targets import poll

# Marks the promises the gateway created as jobs, so that listing jobs skips workflow steps.
JOB_TAG = "async-api:job"

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
    state = SERVER_STATES.get(record.state, record.state.lower())
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


class SessionPool:
    """Keep-alive sessions, each lent to one call at a time, for threads and greenlets alike.

    requests' Session is not safe to share between concurrent calls. A session per thread
    (threading.local) becomes a session per greenlet under gevent, that is one new connection to
    the server per client connection; lending idle sessions keeps connections alive across
    requests either way (tests/test_slow_clients.py). At most `max_idle` are kept: a burst does
    not leave a crowd of idle connections behind.
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
            # The server is on loopback or a private network, never behind a proxy: skip the
            # walk over the environment's proxy variables that requests makes on every call.
            session.trust_env = False
        try:
            yield session
        finally:
            if len(self._idle) < self._max_idle:
                self._idle.append(session)
            else:
                session.close()


# Long-polls read the promise again after these pauses (seconds), then every WAIT_POLL_MAX: a job
# that settles soon is seen within a few ms, one that takes long costs at most 20 reads a second.
WAIT_POLL_FIRST = 0.005
WAIT_POLL_MAX = 0.05

SETTLED_CACHE_SIZE = 10_000  # per gateway process: every poll of a finished job after the first


class SettledPromises:
    """The last settled promises this process saw, newest kept. Thread-safe."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._promises: OrderedDict[str, Promise] = OrderedDict()

    def get(self, promise_id: str) -> Promise | None:
        return self._promises.get(promise_id)

    def remember(self, promise: Promise) -> None:
        with self._lock:
            self._promises[promise.id] = promise
            if len(self._promises) > self._size:
                self._promises.popitem(last=False)


class Engine:
    """The gateway's handle on the Resonate server's promise store."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self.url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._sessions = SessionPool()  # shared by all the requests a gunicorn worker serves
        self._encoder = Base64Encoder()
        self._json = JsonEncoder()
        self._promises = RemotePromiseStore(self.url, self._call_once, self._encoder)
        self._settled = SettledPromises(SETTLED_CACHE_SIZE)

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
            promise = _to_promise(operation(**kwargs))
        except ResonateError as exc:  # raised by the SDK itself, e.g. on encoding
            raise EngineRejected(str(exc)) from exc
        if not promise.pending:
            self._settled.remember(promise)
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
        """The promise now; a settled one never changes, so it is answered from memory."""
        settled = self._settled.get(promise_id)
        if settled is not None:
            return settled
        return self._sdk(self._promises.get, id=quote(promise_id, safe=""))

    def settled_within(self, promise: Promise, seconds: float) -> Promise:
        """`promise` as it is once settled, or after `seconds` if it is still pending.

        The server has no blocking read, so this reads again after a pause that grows from
        WAIT_POLL_FIRST to WAIT_POLL_MAX. time.sleep yields under gevent (the gateway), so a
        wait holds a greenlet, not a thread.
        """
        deadline, pause = time.monotonic() + seconds, WAIT_POLL_FIRST
        while promise.pending and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(pause, left))
            pause = min(pause * 2, WAIT_POLL_MAX)
            promise = self.get(promise.id)
        return promise

    def resolve(self, promise_id: str, value: Any) -> Promise:
        """Resolves once; a replay with the same value returns the settled promise unchanged."""
        return self._settle(self._promises.resolve, promise_id, value)

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
