"""early_refusal: while the admission gate is full, a plain request is refused from its bytes,
before gunicorn parses it, with the bytes gunicorn would have sent for the gate's refusal; any
other request goes gunicorn's way, and a keep-alive connection stays in step either way."""

from __future__ import annotations

import http.client
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import wsgi

from async_api import logs
from async_api.admission import Admission
from async_api.early_refusal import PlainRequest, plain_request, refusal
from tests.conftest import SHARED_STACK_ON_SQLITE
from tests.support.processes import wait_until
from tests.support.slow_engine import slowly_answering

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

    assert request and request.path == "/healthz" and request.path in Admission.EXEMPT


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


def metric(gateway_url: str, name: str) -> float:
    text = requests.get(f"{gateway_url}/metrics", timeout=10).text
    found = [line.split()[1] for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(found[0]) if found else 0.0


@SHARED_STACK_ON_SQLITE
def test_a_full_gate_refuses_plain_requests_early_and_keeps_the_connection_in_step(stack, nonce):
    """ADMISSION_MAX_REQUESTS=1, a begin held by an engine taking 3 s. On one keep-alive
    connection, pipelined: plain begins (refused early), a probe and a chunked begin (gunicorn
    parses them: the probe answers, the begin is refused by the gate), all answered in order;
    once the held begin is done, the same connection's next begin is accepted (gunicorn keeps
    it open 30 s here, not 2). Nothing refused was stored."""
    with slowly_answering(stack.engine.url, delay=3, posts=True) as engine:
        gateway = stack.start_gateway({"RESONATE_URL": engine.url, "ADMISSION_MAX_REQUESTS": "1",
                                       "GUNICORN_CMD_ARGS": "--keep-alive 30"}, workers=1)
        host, port = gateway.url.removeprefix("http://").split(":")

        def begin(name: str) -> bytes:
            return (f"POST /begin?id={name}-{nonce} HTTP/1.1\r\nHost: x\r\nX-Request-ID: {name}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}").encode()

        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(requests.post, f"{gateway.url}/begin",
                               params={"id": f"held-{nonce}"}, json={}, timeout=20)
            wait_until(engine.seen.is_set, 10, "the held begin to reach the engine")
            sock = socket.create_connection((host, int(port)))  # its first read: the gate is full
            sock.sendall(begin("early-1") + begin("early-2")
                         + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                         + b"POST /begin?id=chunked-" + nonce.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\nX-Request-ID: chunked\r\n\r\n"
                         b"2\r\n{}\r\n0\r\n\r\n" + begin("early-3"))
            answers = OneFile(sock)
            got = [answers.answer() for _ in range(5)]
            assert not held.done()  # all of them came while the place was taken

            assert [status for status, _, _ in got] == [503, 503, 200, 503, 503]
            for (_, headers, body), name in zip(got, ["early-1", "early-2", None, "chunked",
                                                      "early-3"], strict=True):
                if name:
                    assert headers["X-Request-ID"] == name
                    assert headers["Retry-After"] == "1"
                    assert headers["Connection"] == "keep-alive"
                    assert b'"code": "overloaded"' in body
            assert held.result().status_code == 202

            sock.sendall(begin("after"))
            status, _, body = answers.answer()
            assert status == 202, body
            sock.close()

        # early-1 and -2 early; the probe and what gunicorn read with it went gunicorn's way
        assert metric(gateway.url, "async_api_admission_refused_total") == 4
        assert 2 <= metric(gateway.url, "async_api_admission_refused_early_total") <= 3
    assert stack.wait_settled(f"after-{nonce}")["status"] == "resolved"
    for name in ("early-1", "early-2", "early-3", "chunked"):
        assert not stack.promise_exists(f"{name}-{nonce}")


@SHARED_STACK_ON_SQLITE
def test_a_refused_connection_waits_for_its_next_request_no_longer_than_gunicorn_would(stack,
                                                                                        nonce):
    """A connection that sends nothing while the gate is full is closed after gunicorn's
    keep-alive wait (2 s), as gunicorn closes any idle connection: the early read waits within
    gunicorn's timeout, not past it."""
    with slowly_answering(stack.engine.url, delay=5, posts=True) as engine:
        gateway = stack.start_gateway({"RESONATE_URL": engine.url,
                                       "ADMISSION_MAX_REQUESTS": "1"}, workers=1)
        host, port = gateway.url.removeprefix("http://").split(":")
        with ThreadPoolExecutor(1) as pool:
            pool.submit(requests.post, f"{gateway.url}/begin", params={"id": f"held-{nonce}"},
                        json={}, timeout=20)
            wait_until(engine.seen.is_set, 10, "the held begin to reach the engine")
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                started = time.monotonic()
                assert sock.recv(1) == b""  # closed by the gateway, not answered
                assert time.monotonic() - started < 4.5  # before the held begin's call ended
