"""HTTP to the Resonate server: the SDK's requests, sent over keep-alive connections of our own.

The SDK 0.4.10 stores describe each call as a `requests.Request` and read `.json()` of the
answer. Sent through requests' Session, every call also built cookies, hooks, redirect checks
and walked the environment's proxy variables: in a burst that was 80 % of a worker's CPU
(py-spy, `make bench`). urllib3 alone still cost 0.30 ms of CPU per call under gevent, most of
it in http.client's header parsing (email.parser). The server's answers are small JSON with a
Content-Length (chunked when long), so this module speaks that much HTTP/1.1 itself: 0.11 ms
per call (2,000 reads of one promise in a gevent-patched process; README "Benchmark"). It is
thread-safe and, under gevent, greenlet-safe. Every call to the server, the gateway's and the
workers', goes through `Transport.send`: its latency and errors are measured there
(tests/test_transport.py).
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests

from async_api import metrics

# Connections kept per server; a caller past that waits for one (at most the call's timeout).
MAX_CONNECTIONS = 32
_MAX_LINE = 65536  # a status or header line longer than this is not the Resonate server's
_SAFE_IN_TARGET = "/%:@!$&'()*+,;=?-._~"  # RFC 3986 path and query characters
# A connection back in use within this is taken as still open: the server keeps idle ones, and
# one that closed meanwhile (a server restarted that fast) is found out by its call, which is
# then sent again on a new connection (Transport._exchange). Older ones are checked before use.
RECHECK_AFTER_SECONDS = 0.25


class Unreachable(Exception):
    """No answer from the server: refused, reset, timed out."""


@dataclass(frozen=True)
class Answer:
    """What the SDK and the engine layer read of a response."""

    status_code: int
    content: bytes

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


def call_name(method: str, path: str) -> str:
    """A call as a metric label: its method and path, with a promise's id as {id} (bounded)."""
    head, promises, _ = path.partition("/promises/")
    if promises and method.upper() != "POST":  # POST /promises/task creates: no id in it
        path = f"{head}/promises/{{id}}"
    return f"{method.upper()} {path}"


class ClosedBeforeAnswer(ConnectionError):
    """The server closed the connection before the first byte of an answer."""


class _Connection:
    """One keep-alive connection: a request written whole, its answer read by Content-Length
    or chunks."""

    def __init__(self, host: str, port: int, timeout: float, tls: bool) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        self._sock = sock
        self._reader = sock.makefile("rb")
        self.idle_since = time.monotonic()

    def dropped(self) -> bool:
        """An idle connection with something to read was closed by the server (or is out of
        step with it): not to be used again. Asked only of connections idle for a while: the
        check costs as much as a third of a call under gevent."""
        if time.monotonic() - self.idle_since < RECHECK_AFTER_SECONDS:
            return False
        poller = select.poll()  # not select.select: no limit on the descriptor's number
        poller.register(self._sock, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def exchange(self, head: bytes, body: bytes) -> tuple[int, bytes, bool]:
        """(status, body, whether the connection may be used again)."""
        try:
            self._sock.sendall(head + body)
            status_line = self._reader.readline(_MAX_LINE)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ClosedBeforeAnswer(str(exc)) from exc
        if not status_line:
            raise ClosedBeforeAnswer("the server closed the connection")
        if not status_line.endswith(b"\n"):
            raise ConnectionError("the server's status line was cut short")
        version, status, *_ = status_line.split(None, 2)
        headers: dict[bytes, bytes] = {}
        while (line := self._reader.readline(_MAX_LINE)) not in (b"\r\n", b"\n"):
            if not line.endswith(b"\n"):
                raise ConnectionError("the server's answer ended in its headers")
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        keep = version == b"HTTP/1.1" and headers.get(b"connection", b"").lower() != b"close"
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            content = self._chunks()
        elif (length := headers.get(b"content-length")) is not None:
            content = self._exactly(int(length))
        else:
            content, keep = self._reader.read(), False
        return int(status), content, keep

    def _exactly(self, size: int) -> bytes:
        data = self._reader.read(size)
        if len(data) != size:
            raise ConnectionError("the server's answer was cut short")
        return data

    def _chunks(self) -> bytes:
        parts = []
        while size := int(self._reader.readline(_MAX_LINE).split(b";")[0], 16):
            parts.append(self._exactly(size))
            self._exactly(2)  # the chunk's CRLF
        while self._reader.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(parts)


class Transport:
    """Keep-alive connections to one server, shared by every thread or greenlet of a process."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._tls = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._host_header = parts.netloc.rpartition("@")[2]
        self._timeout = timeout_seconds
        self._free = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []

    def send(self, request: requests.Request) -> Answer:
        """One attempt; raises Unreachable when the server does not answer."""
        # The path alone on the request line: a proxy in between (tests/test_shutdown.py)
        # would not expect the absolute form.
        parts = urlsplit(request.url)
        # Characters a request line may not hold (a space, CR LF, non-ASCII) percent-encoded,
        # as urllib3 did; the ids the engine layer sends are quoted already.
        target = quote(parts.path or "/", safe=_SAFE_IN_TARGET)
        if parts.query:
            target += "?" + quote(parts.query, safe=_SAFE_IN_TARGET)
        if request.params:
            target += ("&" if parts.query else "?") + urlencode(request.params)
        lines = [f"{request.method.upper()} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in (request.headers or {}).items()]
        body = b""
        if request.json is not None:
            body = json.dumps(request.json).encode()
            lines.append("Content-Type: application/json")
        if body or request.method.upper() in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        call, started = call_name(request.method, parts.path or "/"), time.perf_counter()
        try:
            status, content = self._exchange(head, body)
        except (OSError, ValueError) as exc:  # refused, reset, timed out, or not HTTP
            metrics.engine_call(call, time.perf_counter() - started, "unreachable")
            raise Unreachable(f"{self._host}:{self._port}: {exc}") from exc
        metrics.engine_call(call, time.perf_counter() - started,
                            str(status) if status >= 400 else None)
        return Answer(status, content)

    def _exchange(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if not self._free.acquire(timeout=self._timeout):
            raise TimeoutError(f"all {MAX_CONNECTIONS} connections busy")
        try:
            reused = self._idle_connection()
            if reused is not None:
                try:
                    return self._exchange_on(reused, head, body)
                except ClosedBeforeAnswer:
                    # Closed while idle, too recently used to be checked (RECHECK_AFTER_SECONDS):
                    # the server restarted, and the other idle connections are as stale. Sent
                    # once more on a new connection, as HTTP clients do: the engine layer takes a
                    # call without an answer as one that may have been applied, and the server
                    # answers a repeated one by its idempotency key or refuses it.
                    # Proved by tests/test_transport.py and test_faults.py's restarted server.
                    self._close_idle()
            return self._exchange_on(
                _Connection(self._host, self._port, self._timeout, self._tls), head, body)
        finally:
            self._free.release()

    def _exchange_on(self, connection: _Connection, head: bytes,
                     body: bytes) -> tuple[int, bytes]:
        try:
            status, content, keep = connection.exchange(head, body)
        except BaseException:
            connection.close()
            raise
        if keep:
            connection.idle_since = time.monotonic()
            with self._lock:
                self._idle.append(connection)
        else:
            connection.close()
        return status, content

    def _close_idle(self) -> None:
        with self._lock:
            stale, self._idle = self._idle, []
        for connection in stale:
            connection.close()

    def _idle_connection(self) -> _Connection | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                connection = self._idle.pop()
            if not connection.dropped():
                return connection
            connection.close()
