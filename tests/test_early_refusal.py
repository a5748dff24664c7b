"""early_refusal: while the admission gate is full, a plain request is refused from its bytes,
before gunicorn parses it, with the bytes gunicorn would have sent for the gate's refusal; any
other request goes gunicorn's way, and a keep-alive connection stays in step either way."""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import wsgi

from async_api import logs
from async_api.admission import EXEMPT, Admission
from async_api.early_refusal import PlainRequest, plain_request, refusal
from tests.conftest import SHARED_STACK_ON_SQLITE
from tests.support.processes import wait_until
from tests.support.slow_engine import slowly_answering
from tests.test_metrics import scrape, value

MAX_BODY = 1000
BEGIN = b"POST /begin?id=a-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"


def test_a_plain_request_is_read_from_its_bytes():
    data = (b"POST /v1/operations?x=1 HTTP/1.1\r\nHost: x\r\nX-Request-ID:  req-7 \r\n"
            b"traceparent: 00-abc\r\nContent-Length: 2\r\n\r\n{}")

    assert plain_request(data + b"GET /healthz HTTP/1.1\r\n", MAX_BODY) == PlainRequest(
        len(data), "/v1/operations", "req-7", "00-abc")
    assert plain_request(b"GET /wait HTTP/1.1\r\n\r\n", MAX_BODY) == PlainRequest(
        22, "/wait", None, None)
    assert plain_request(b"GET /wait HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n", MAX_BODY)


@pytest.mark.parametrize("target", [b"/healthz#x", b"/healthz#?x", b"/healthz?x#y"])
def test_the_path_is_the_one_gunicorn_gives_the_app(target):
    """gunicorn's PATH_INFO ends at the query or the fragment (urllib.parse.urlsplit): a probe
    with either is still a probe, which the gate answers."""
    request = plain_request(b"GET " + target + b" HTTP/1.1\r\n\r\n", MAX_BODY)

    assert request and request.path == "/healthz" and request.path in EXEMPT


NOT_PLAIN = {
    "incomplete head": BEGIN,
    "incomplete body": BEGIN + b"\r\n{",
    "chunked": b"POST /begin HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "connection: close": BEGIN + b"Connection: close\r\n\r\n{}",
    "connection: upgrade": BEGIN + b"Connection: keep-alive, Upgrade\r\n\r\n{}",
    "expect": BEGIN + b"Expect: 100-continue\r\n\r\n{}",
    "upgrade": b"GET /wait HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
    "HEAD": b"HEAD /begin HTTP/1.1\r\n\r\n",
    "HTTP/1.0": b"GET /wait HTTP/1.0\r\n\r\n",
    "a path gunicorn decodes": b"GET /health%7Az HTTP/1.1\r\n\r\n",
    "absolute form": b"GET http://x/wait HTTP/1.1\r\n\r\n",
    "lower-case method": b"get /wait HTTP/1.1\r\n\r\n",
    "a method too short for gunicorn (400)": b"A /wait HTTP/1.1\r\n\r\n",
    "a method too long for gunicorn (400)": b"ABCDEFGHIJKLMNOPQRSTU /wait HTTP/1.1\r\n\r\n",
    "CONNECT, after which gunicorn closes": b"CONNECT /wait HTTP/1.1\r\n\r\n",
    "two lengths": BEGIN + b"Content-Length: 2\r\n\r\n{}",
    "two hosts (gunicorn's 400)": b"GET /wait HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n",
    "two content types (gunicorn's 400)": BEGIN + b"Content-Type: a\r\nContent-Type: b\r\n\r\n{}",
    "two request ids": b"GET /wait HTTP/1.1\r\nX-Request-ID: a\r\nx-request-id: b\r\n\r\n",
    "a length that is not a number": b"POST /begin HTTP/1.1\r\nContent-Length: -2\r\n\r\n{}",
    "a body over the limit (the app's 413)": (
        b"POST /begin HTTP/1.1\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001),
    "a folded field": BEGIN + b"X-A: 1\r\n 2\r\n\r\n{}",
    "a field without a name": BEGIN + b": 1\r\n\r\n{}",
    "a field with a control byte": BEGIN + b"X-A: \x01\r\n\r\n{}",
    "a bare LF": b"GET /wait HTTP/1.1\nHost: x\n\n",
    "a request line over gunicorn's limit": b"GET /" + b"a" * 4094 + b" HTTP/1.1\r\n\r\n",
    "more fields than gunicorn's limit": b"GET /wait HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n",
}


@pytest.mark.parametrize("case", NOT_PLAIN)
def test_anything_else_is_left_to_gunicorn(case):
    assert plain_request(NOT_PLAIN[case], MAX_BODY) is None


def test_a_field_over_gunicorns_size_limit_is_left_to_gunicorn():
    """gunicorn answers 431 past limit_request_field_size (its line and CRLF), which may be
    set lower than its 8190 bytes."""
    data = b"GET /wait HTTP/1.1\r\nX-A: " + b"a" * 15 + b"\r\n\r\n"  # a field of 22 bytes

    assert plain_request(data, MAX_BODY, max_field=22)
    assert plain_request(data, MAX_BODY, max_field=21) is None


def gunicorns_refusal(gate: Admission, environ: dict[str, Any]) -> bytes:
    """What gunicorn sends for the gate's refusal (gunicorn's own Response, as its workers use
    it), the request as gunicorn's parser hands it to the app."""
    sent: list[bytes] = []
    sock = SimpleNamespace(sendall=lambda data: sent.append(bytes(data)))
    response = wsgi.Response(SimpleNamespace(version=(1, 1), method="POST",
                                             should_close=lambda: False), sock, Config())
    body = gate({"CONTENT_LENGTH": "0", **environ}, response.start_response)
    for piece in body:
        response.write(piece)
    return b"".join(sent)


@pytest.mark.parametrize("path", ["/begin", "/v1/operations"])
@pytest.mark.parametrize("request_id", [None, "req-7", "not valid!"])
@pytest.mark.parametrize("traceparent", [None, "00-0af7651916cd43dd8448eb211c80319c-"
                                               "b7ad6b7169203331-01"])
def test_the_same_bytes_as_gunicorn_sends_for_the_gates_refusal(path, request_id, traceparent,
                                                                 monkeypatch):
    monkeypatch.setattr(util, "http_date", lambda: "Sat, 28 Nov 2026 05:00:00 GMT")
    monkeypatch.setattr(logs, "_random_hex", lambda bits: "7" * (bits // 4))
    gate = Admission(lambda environ, start_response: [], 1, 1, MAX_BODY)
    gate.in_flight = 1  # full
    environ = {"PATH_INFO": path, "HTTP_X_REQUEST_ID": request_id,
               "HTTP_TRACEPARENT": traceparent}

    ours = refusal(PlainRequest(0, path, request_id, traceparent), gate)

    assert ours == gunicorns_refusal(gate, {k: v for k, v in environ.items() if v is not None})
    assert ours.startswith(b"HTTP/1.1 503 SERVICE UNAVAILABLE\r\n")


class OneFile:
    """Hands http.client's responses one buffered reader, which they may not close: pipelined
    answers stay in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rb")

    def makefile(self, mode: str) -> Any:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)

    def close(self) -> None:
        pass

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        response = http.client.HTTPResponse(self, method="POST")  # type: ignore[arg-type]
        response.begin()
        return response.status, dict(response.getheaders()), response.read()


def begin(name: str, nonce: str) -> bytes:
    """A plain begin, as a client sends it."""
    return (f"POST /begin?id={name}-{nonce} HTTP/1.1\r\nHost: x\r\nX-Request-ID: {name}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}").encode()


@contextlib.contextmanager
def a_gateway_with_its_one_place_held(
        stack: Any, nonce: str, delay: float, env: dict[str, str] | None = None,
) -> Iterator[tuple[Any, tuple[str, int], Future[requests.Response]]]:
    """ADMISSION_MAX_REQUESTS=1 and an engine taking `delay` s per call: (gateway, its
    address, the held begin's answer) once the held begin reached the engine."""
    with slowly_answering(stack.engine.url, delay=delay, posts=True) as engine, \
            ThreadPoolExecutor(1) as pool:
        gateway = stack.start_gateway({"RESONATE_URL": engine.url,
                                       "ADMISSION_MAX_REQUESTS": "1", **(env or {})}, workers=1)
        host, port = gateway.url.removeprefix("http://").split(":")
        answer = pool.submit(requests.post, f"{gateway.url}/begin",
                             params={"id": f"held-{nonce}"}, json={}, timeout=20)
        wait_until(engine.seen.is_set, 10, "the held begin to reach the engine")
        yield gateway, (host, int(port)), answer


# Sent one at a time, each as soon as the last was answered: at least one comes within the
# refused connection's pause and is refused early (the pipelined ones may all have been read
# by gunicorn with the probe)
ASKED_AGAIN = 20


@SHARED_STACK_ON_SQLITE
def test_a_full_gate_refuses_plain_requests_early_and_keeps_the_connection_in_step(stack, nonce):
    """With the one place held: on one keep-alive connection, pipelined, plain begins, a probe
    and a chunked begin (gunicorn's way: the probe answers, the gate refuses the begin) are all
    answered in order; a client that asks again at once (as wrk does) is refused early; once
    the held begin is done, the same connection's next begin is accepted (gunicorn keeps it
    open 30 s here, not 2). Nothing refused was stored."""
    keep_open = {"GUNICORN_CMD_ARGS": "--keep-alive 30"}
    with a_gateway_with_its_one_place_held(stack, nonce, 3, keep_open) as (gateway, address,
                                                                            held), \
            socket.create_connection(address) as sock:
        sock.sendall(begin("piped-1", nonce) + begin("piped-2", nonce)
                     + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                     + b"POST /begin?id=chunked-" + nonce.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\nX-Request-ID: chunked\r\n\r\n"
                     b"2\r\n{}\r\n0\r\n\r\n" + begin("piped-3", nonce))
        answers = OneFile(sock)
        got = [answers.answer() for _ in range(5)]
        for number in range(ASKED_AGAIN):
            sock.sendall(begin(f"again-{number}", nonce))
            got.append(answers.answer())
        assert not held.done()  # all of them came while the place was taken

        names = ["piped-1", "piped-2", None, "chunked", "piped-3",
                 *(f"again-{number}" for number in range(ASKED_AGAIN))]
        assert [status for status, _, _ in got] == [503 if name else 200 for name in names]
        for (_, headers, body), name in zip(got, names, strict=True):
            if name:
                assert headers["X-Request-ID"] == name
                assert headers["Retry-After"] == "1"
                assert headers["Connection"] == "keep-alive"
                assert b'"code": "overloaded"' in body
        scraped = scrape(f"{gateway.url}/metrics")
        refused = value(scraped, "async_api_admission_refused_total")
        early = value(scraped, "async_api_admission_refused_early_total")
        assert held.result().status_code == 202

        sock.sendall(begin("after", nonce))
        status, _, body = answers.answer()
        assert status == 202, body

    assert refused == len(names) - 1
    assert 1 <= early <= refused - 1  # the chunked begin is never refused early
    assert stack.wait_settled(f"after-{nonce}")["status"] == "resolved"
    for name in filter(None, names):
        assert not stack.promise_exists(f"{name}-{nonce}")


@SHARED_STACK_ON_SQLITE
def test_a_refused_connection_waits_for_its_next_request_as_long_as_gunicorn_would(stack, nonce):
    """After a refusal, as after any answer, the connection waits up to gunicorn's keep-alive
    (2 s) for its next request: a client that asks again every second (Retry-After) is
    answered every time; one that sends nothing more is closed after that wait."""
    wait_long = {"ENGINE_TIMEOUT_SECONDS": "15"}  # the held begin outlasts all of it
    with a_gateway_with_its_one_place_held(stack, nonce, 8, wait_long) as (_, address, held), \
            socket.create_connection(address, timeout=10) as sock:
        answers = OneFile(sock)
        for number in range(4):
            time.sleep(1)
            sock.sendall(begin(f"again-{number}", nonce))
            status, headers, _ = answers.answer()
            assert (status, headers["X-Request-ID"]) == (503, f"again-{number}")
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed by the gateway, not answered
        assert time.monotonic() - started < 6  # gunicorn's wait, not the held begin's end
        assert not held.done()  # all of it came while the place was taken


@SHARED_STACK_ON_SQLITE
def test_a_request_that_comes_once_the_gateway_stops_is_answered_with_a_close(stack, nonce):
    """A connection waiting for its next request when gunicorn is told to stop (SIGTERM):
    the request that then comes is answered as gunicorn answers it, `Connection: close`, and
    the connection ends; the request at work still finishes."""
    with a_gateway_with_its_one_place_held(stack, nonce, 4) as (gateway, address, held), \
            socket.create_connection(address, timeout=10) as sock:
        answers = OneFile(sock)
        sock.sendall(begin("before", nonce))
        assert answers.answer()[1]["Connection"] == "keep-alive"
        time.sleep(0.5)  # the connection waits for its next request
        gateway.ask_to_stop()
        time.sleep(0.5)
        sock.sendall(begin("after", nonce))
        status, headers, _ = answers.answer()
        assert (status, headers["Connection"]) == (503, "close")
        assert sock.recv(1) == b""
        assert held.result().status_code == 202
    gateway.wait_stopped()
