"""The admission gate's refusal, answered from the request's bytes before gunicorn parses them.

Under overload nine answers in ten are refusals, and most of a refusal's CPU went to gunicorn:
parsing the request (22 % of the gateway's CPU under `make bench-overload`, py-spy), the WSGI
environment (6 %), the app's gate (6 %). While the gate of its process is full, a connection's
next request, when it is already there (a client that asks again at once, as wrk does, sends
it during the refused connection's pause), is looked at here first; waiting for one stays
gunicorn's. When its bytes are one complete, plain HTTP/1.1 request
(a usual method, not HEAD nor CONNECT; a body of a known length; no `Expect`,
`Transfer-Encoding` or `Upgrade`; `Connection` only as `keep-alive`; not a probe), the refusal
goes out with no parsing beyond two regular expressions, and the request's bytes are taken off
the socket. Any other request, or a gate with room by the time its bytes came, goes gunicorn's
way, where the gate (admission.py) decides as before: this module answers only what the gate
would refuse, with the same bytes (tests/test_early_refusal.py). Under overload the gateway's
CPU per answer went from 0.56 to 0.22 ms, refusals p99 from 134 to 70 ms (PERFORMANCE.md,
"Overload").

`plain_request` and `refusal` are pure; `RefusingParser` is the socket side.
"""

from __future__ import annotations

import io
import re
import socket
import time
from typing import Any, NamedTuple

import gunicorn.http
from gunicorn import SERVER, util
from gunicorn.http.message import RFC9110_5_3_SINGLETON_FIELDS
from gunicorn.http.parser import RequestParser

from async_api import metrics
from async_api.admission import EXEMPT, REFUSED_STATUS, Admission

# What one read looks at: a refusable request fits, or it goes gunicorn's way.
PEEK_BYTES = 8192
# The share of gunicorn's keep-alive wait that one connection's early refusals may take in a row.
KEEPALIVE_SHARE = 0.1
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# Linear: no two parts of a line can match the same bytes (a field's blanks are stripped after).
# The usual methods only: gunicorn refuses some others (400: under 3 or over 20 letters), answers
# HEAD without a body, and closes the connection after a CONNECT (its bytes are a tunnel's).
_METHOD = rb"(?:GET|POST|PUT|PATCH|DELETE|OPTIONS)"
_HEAD = re.compile(_METHOD + rb" (/[!-~]*) HTTP/1\.1\r\n((?:" + _TOKEN + rb":[ -~]*\r\n)*)\r\n")
_FIELD = re.compile(rb"(" + _TOKEN + rb"):([ -~]*)\r\n")
# Fields that make a request anything but plain: its framing or its answer would differ.
_NOT_PLAIN = frozenset({b"transfer-encoding", b"expect", b"upgrade"})
_READ = frozenset({b"content-length", b"x-request-id", b"traceparent", b"connection"})
# Fields a request may have once: those read here, and those gunicorn refuses twice (400).
_ONCE = _READ | {name.lower().encode() for name in RFC9110_5_3_SINGLETON_FIELDS}
# Where gunicorn's path ends (urllib.parse.urlsplit): at the query or at the fragment.
_PATH_END = re.compile(rb"[?#]")


class PlainRequest(NamedTuple):
    size: int  # bytes of the request, head and body
    path: str
    request_id: str | None
    traceparent: str | None


def plain_request(data: bytes, max_body_bytes: int, max_line: int = 4094,
                  max_fields: int = 100, max_field: int = 8190) -> PlainRequest | None:
    """The request at the start of `data` when it is complete and plain, else None. The
    limits are gunicorn's (limit_request_line, limit_request_fields, limit_request_field_size
    counting a field's CRLF): past them it answers."""
    head = _HEAD.match(data)
    if (head is None or b"%" in head.group(1)  # a path to decode
            or data.index(b"\r\n") > max_line):
        return None
    fields: dict[bytes, bytes] = {}
    for count, field in enumerate(_FIELD.finditer(head.group(2)), 1):
        name = field.group(1).lower()
        if (count > max_fields or len(field.group(0)) > max_field or name in _NOT_PLAIN
                or (name in _ONCE and name in fields)):
            return None
        fields[name] = field.group(2).strip(b" \t")
    if fields.get(b"connection", b"keep-alive").lower() != b"keep-alive":  # close, upgrade, ...
        return None
    length = fields.get(b"content-length", b"0")
    if not length.isdigit() or int(length) > max_body_bytes:  # over the limit: the app's 413
        return None
    size = head.end() + int(length)
    if size > len(data):
        return None
    request_id, traceparent = fields.get(b"x-request-id"), fields.get(b"traceparent")
    return PlainRequest(size, _PATH_END.split(head.group(1), 1)[0].decode("ascii"),
                        request_id and request_id.decode("latin-1"),
                        traceparent and traceparent.decode("latin-1"))


def refusal(request: PlainRequest, gate: Admission) -> bytes:
    """The bytes gunicorn sends for the gate's refusal of `request` (Admission._refuse)."""
    body, headers = gate.refusal(request.path, request.request_id, request.traceparent)
    head = [f"HTTP/1.1 {REFUSED_STATUS}\r\n", f"Server: {SERVER}\r\n",
            f"Date: {util.http_date()}\r\n", "Connection: keep-alive\r\n",
            *(f"{name}: {value}\r\n" for name, value in headers), "\r\n"]
    return "".join(head).encode("latin-1") + body


class RefusingParser(RequestParser):
    """gunicorn's parser, refusing early while its process's gate is full."""

    gate: Admission
    worker: Any  # gunicorn's: once it is shutting down, gunicorn answers (and closes)

    def __next__(self) -> Any:
        if self.mesg and self.mesg.should_close():
            raise StopIteration()
        if not self.finish_body():
            raise StopIteration()
        if self.gate.full():  # asked first: a gate with room costs a request nothing more
            # gunicorn's keep-alive timer (its timeout_ctx) started before this call and runs
            # until a request is parsed: refusals of requests already there take a tenth of it
            # at most, so that gunicorn's own wait for the next one keeps nine tenths
            until = time.monotonic() + self.cfg.keepalive * KEEPALIVE_SHARE
            while self._refused_early() and time.monotonic() < until and self.gate.full():
                pass
        return super().__next__()

    def _refused_early(self) -> bool:
        """Refuses a request that is already there; never waits for one: that wait is
        gunicorn's, and a request that comes once the worker stops is gunicorn's to close."""
        if self.unreader.buf.seek(0, io.SEEK_END) or not self.worker.alive:  # bytes read ahead
            return False
        sock = self.unreader.sock
        timeout = sock.gettimeout()
        sock.settimeout(0.0)  # gevent's recv raises, rather than waits, when nothing is there
        try:
            data = sock.recv(PEEK_BYTES, socket.MSG_PEEK)  # takes nothing off the socket
        except BlockingIOError:
            return False
        finally:
            sock.settimeout(timeout)
        request = plain_request(data, self.gate.max_body_bytes, self.cfg.limit_request_line,
                                self.cfg.limit_request_fields,
                                self.cfg.limit_request_field_size) if data else None
        if not request or request.path in EXEMPT or not self.gate.full():
            return False
        answer = refusal(request, self.gate)
        metrics.ADMISSION_REFUSED_EARLY.inc()
        sock.recv(request.size)  # all of it is there: the peek saw it
        sock.sendall(answer)
        self.gate.pause()
        return True


def install(gate: Admission, worker: Any) -> None:
    """Under gunicorn's gevent worker, whose connections get their parser from
    gunicorn.http.get_parser; not without keep-alive, where a connection answers once, nor
    with gunicorn's TLS, whose sockets cannot peek."""
    if worker.cfg.keepalive and not worker.cfg.is_ssl:
        RefusingParser.gate, RefusingParser.worker = gate, worker
        gunicorn.http.RequestParser = RefusingParser  # type: ignore[misc]
