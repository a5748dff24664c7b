"""Admission: past ADMISSION_MAX_REQUESTS requests at work in a gateway process, the next one
is refused at once with 503 `overloaded` and Retry-After, before Flask sees it (README,
"Overload").

Why here, in front of the app: a refusal that waits for the engine's slots (engine/client.py)
comes only after the request queued for the CPU behind every other request of the process, and
after Flask, auth and the body checks spent on it what an accepted request costs. Bounding the
requests at work bounds that queue, so accepted requests stay fast and the excess hears "later"
within milliseconds. WSGI middleware, no Flask: a refusal costs a few dictionary lookups.

What counts as at work:
- Not the probes nor /metrics (EXEMPT): they must answer under overload, and cost little.
- Not a request still sending its body: the body is read (up to MAX_BODY_BYTES) before the
  request is counted, so slow clients hold connections, not the places of requests that work.
- Not a long-poll while it holds (`release`, called by the routes that wait): it waits on an
  event and costs nothing until its job settles; counted, 16 waiting clients would shut every
  `/begin` out. Its last read still goes through the engine's slots.

The gate narrows to a quarter of its places while the process is short of CPU: then every
request at work makes a refusal wait longer for its turn (PERFORMANCE.md, "Overload": refusals
p99 over 100 ms with 16 places, and on a slower day with 8, under it with 4), while a process
with CPU to spare keeps all its places for requests that wait on the engine. What tells it: a
refused connection's pause (below) that ends late, a free measure taken only when the gate
refuses.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from async_api import logs, metrics
from async_api.errors import GOOGLE_API_PREFIX, OVERLOADED, OVERLOADED_MESSAGE, google_status

# Answered whatever the load: liveness, readiness and the metrics of an overloaded gateway.
EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
REFUSED_STATUS = "503 SERVICE UNAVAILABLE"
_BODY = json.dumps({"error": {"code": OVERLOADED, "message": OVERLOADED_MESSAGE}}).encode()
# Under /v1/ (Google's API conventions) every error is a google.rpc.Status, this one too.
_GOOGLE_BODY = json.dumps(google_status(503, OVERLOADED, OVERLOADED_MESSAGE),
                          separators=(",", ":")).encode()
# How long a connection that was just refused waits before its next request is read: it caps
# what a client ignoring Retry-After costs (at most 200 refusals/s per connection), and keeps
# its next answer well within 100 ms. 5 ms, not 10: refused clients hear sooner, and wrk's 64
# connections then offer 4 times what the stack sustains (PERFORMANCE.md, "Eighteenth session").
REFUSED_PAUSE_SECONDS = 0.005
# A pause that ends this much late means greenlets and processes queue for the CPU: the gate
# then keeps 1 / NARROWED_SHARE of its places (at least one) until NARROWED_SECONDS pass with
# no such pause.
LATE_PAUSE_SECONDS = 0.02
NARROWED_SHARE = 4
NARROWED_SECONDS = 1.0
_TICKET = "async_api.admission"  # where a counted request's ticket waits, in the WSGI environ

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Ticket:
    """One counted request; released once, whichever comes first: its hold or its end."""

    __slots__ = ("_gate", "_held")

    def __init__(self, gate: Admission) -> None:
        self._gate, self._held = gate, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._gate._leave()


class _Refusal(list[bytes]):
    """A refusal's body. The server calls close() once the answer is sent, before it reads the
    connection's next request: that read waits REFUSED_PAUSE_SECONDS (a greenlet's sleep), and
    how late the sleep ends tells the gate whether the process is short of CPU.

    A refusal does no I/O that waits, and gevent switches greenlets only on a wait: a client
    that asks again the moment it is refused would otherwise be served again and again by this
    greenlet while the other requests of the process wait, and even with a yield each such
    connection refused as fast as the CPU allows takes from the accepted requests the CPU they
    need (PERFORMANCE.md, "A refused connection pauses": accepted begins/s fell by half). A
    client that honours Retry-After never meets the pause."""

    def __init__(self, gate: Admission, body: bytes) -> None:
        super().__init__([body])
        self._gate = gate

    def close(self) -> None:
        self._gate.pause()


class Admission:
    """WSGI middleware counting the requests at work in this process; `limit` 0 turns it off."""

    def __init__(self, app: WsgiApp, limit: int, retry_after_seconds: int,
                 max_body_bytes: int) -> None:
        self.app, self.limit = app, limit
        self.narrowed_limit = max(1, limit // NARROWED_SHARE)
        self.narrowed_until = 0.0  # time.monotonic() until which narrowed_limit holds
        self.retry_after = str(retry_after_seconds)
        self.max_body_bytes = max_body_bytes
        self.in_flight = 0
        self._lock = threading.Lock()  # a gevent lock once patched; plain threads are safe too

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.limit <= 0 or environ.get("PATH_INFO") in EXEMPT or not _read_body(
                environ, self.max_body_bytes):
            return self.app(environ, start_response)
        limit = self._current_limit()
        with self._lock:
            admitted = self.in_flight < limit
            if admitted:
                self.in_flight += 1
        if not admitted:
            return self._refuse(environ, start_response)
        ticket = environ[_TICKET] = _Ticket(self)
        try:  # the answer of every route is built by now: the count ends with the call
            return self.app(environ, start_response)
        finally:
            ticket.release()

    def _current_limit(self) -> int:
        return self.narrowed_limit if time.monotonic() < self.narrowed_until else self.limit

    def full(self) -> bool:
        """The next request would be refused (early_refusal.py asks before it reads one)."""
        return self.limit > 0 and self.in_flight >= self._current_limit()

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def pause(self) -> None:
        """A refused connection's pause (see _Refusal), and how late it ended."""
        started = time.monotonic()
        time.sleep(REFUSED_PAUSE_SECONDS)
        self.paused(time.monotonic() - started - REFUSED_PAUSE_SECONDS)

    def paused(self, late: float) -> None:
        """A refused connection's pause ended `late` seconds after it should have."""
        if late >= LATE_PAUSE_SECONDS:
            now = time.monotonic()
            if now >= self.narrowed_until:
                metrics.ADMISSION_NARROWED.inc()
            self.narrowed_until = now + NARROWED_SECONDS

    def _refuse(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        body, headers = self.refusal(environ.get("PATH_INFO", ""),
                                     environ.get("HTTP_X_REQUEST_ID"),
                                     environ.get("HTTP_TRACEPARENT"))
        start_response(REFUSED_STATUS, headers)
        return _Refusal(self, body)

    def refusal(self, path: str, request_id: str | None,
                traceparent: str | None) -> tuple[bytes, list[tuple[str, str]]]:
        """503 overloaded (body, headers), as the app's JSON errors are, with the request and
        trace ids every answer carries (telemetry.py); no log line, which would cost more than
        the refusal."""
        metrics.ADMISSION_REFUSED.inc()
        _, traceparent = logs.new_span(traceparent)
        body = _GOOGLE_BODY if path.startswith(GOOGLE_API_PREFIX) else _BODY
        return body, [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                      ("Retry-After", self.retry_after),
                      (logs.REQUEST_ID_HEADER, logs.request_id(request_id)),
                      (logs.TRACEPARENT_HEADER, traceparent)]


def _read_body(environ: dict[str, Any], limit: int) -> bool:
    """Reads the request's body, up to `limit` bytes, into memory for the app; False when it
    is over the limit (the app then answers 413 without work, uncounted)."""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False  # the app answers 400
    if length > limit:
        return False
    if not (chunked or length):
        return True
    body = environ["wsgi.input"].read(limit + 1 if chunked else length)
    environ["wsgi.input"] = io.BytesIO(body)
    return len(body) <= limit


def release(environ: dict[str, Any]) -> None:
    """The request stops counting: it is about to hold (a long-poll, a quote waiting for its
    worker) without using the CPU. Nothing when it was not counted."""
    ticket = environ.get(_TICKET)
    if ticket is not None:
        ticket.release()
