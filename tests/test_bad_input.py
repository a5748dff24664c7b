"""Every bad request gets a JSON error with the right status, never HTML or a 500.

The gateway refuses most before any engine call: those run in this process (`offline`), in
milliseconds. Gunicorn's own limits, and what a refused body would do to a worker, need real
processes (`stack`).
"""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from async_api.app import create_app
from tests.support.http import assert_error
from tests.support.in_process import NOWHERE

CASES = [
    # (method, path, headers, body, status, code)
    ("GET", "/no-such-route", {}, None, 404, "not_found"),
    ("DELETE", "/begin", {}, None, 405, "method_not_allowed"),
    ("POST", "/wait?id=x", {}, None, 405, "method_not_allowed"),
    ("POST", "/begin", {"Content-Type": "application/json"}, b"{not json", 400, "malformed_json"),
    ("POST", "/begin", {"Content-Type": "application/json"}, b'{"a": NaN}', 400,
     "non_finite_number"),
    ("POST", "/begin", {"Content-Type": "application/json"}, b'{"a": 1, "a": 2}', 400,
     "duplicate_key"),
    ("POST", "/begin", {"Content-Type": "text/plain"}, b"hello", 415, "unsupported_media_type"),
    ("POST", "/begin", {"Content-Type": "application/json"}, b"[" * 100 + b"]" * 100, 400,
     "too_deep"),
    ("POST", "/begin", {"Content-Type": "application/json"}, b"[" * 100_000 + b"]" * 100_000,
     400, "too_deep"),  # past what the parser itself can nest
    # a compressed body would be read as sent: gzip as malformed JSON, and "br" as plain JSON
    ("POST", "/begin", {"Content-Type": "application/json", "Content-Encoding": "gzip"},
     b"\x1f\x8b\x08\x00", 415, "unsupported_content_encoding"),
    ("POST", "/begin?id=br", {"Content-Type": "application/json", "Content-Encoding": "br"},
     b'{"g": 1}', 415, "unsupported_content_encoding"),
    ("POST", "/begin", {"Content-Type": "application/json"}, b"\"" + b"a" * (2 << 20) + b"\"",
     413, "request_entity_too_large"),
    ("POST", "/begin?id=" + "a" * 201, {}, None, 400, "invalid_id"),
    ("POST", "/begin?id=white space", {}, None, 400, "invalid_id"),
    # a client id shaped like a workflow step's ("<id>.1") or like the service's own ids
    ("POST", "/begin?id=job-1.1", {}, None, 400, "invalid_id"),
    # a start's query knows `id` alone: a misspelt one would start a new job at every resend
    ("POST", "/begin?ID=job-1", {}, None, 400, "bad_request"),
    ("POST", "/fan-out-workflow?job_id=fan-1", {"Content-Type": "application/json"},
     b'{"count": 1}', 422, "unprocessable_entity"),
    ("POST", "/begin?id=order:B7", {}, None, 400, "invalid_id"),
    ("POST", "/fan-out-workflow?id=fan.1", {}, None, 400, "invalid_id"),
    ("POST", "/orders/B7.1/approve-and-ship", {}, None, 404, "not_found"),
    ("POST", "/jobs", {"Content-Type": "application/json"},
     b'{"order_id": "A1.1", "items": ["x"]}', 422, "unprocessable_entity"),
    ("POST", "/begin?id=%C3%A9t%C3%A9", {}, None, 400, "invalid_id"),
    ("GET", "/wait?id=", {}, None, 400, "invalid_id"),
    # unicode and very long ids
    ("GET", "/wait?id=%F0%9F%98%80", {}, None, 400, "invalid_id"),
    ("GET", "/wait?id=a%E2%80%AEb", {}, None, 400, "invalid_id"),
    ("GET", "/wait?id=a%00b", {}, None, 400, "invalid_id"),
    ("POST", "/begin?id=%E6%97%A5%E6%9C%AC", {}, None, 400, "invalid_id"),
    ("GET", "/wait?id=" + "a" * 3000, {}, None, 400, "invalid_id"),
    ("POST", "/begin", {"Content-Type": "application/json"}, b'{"a": ' * 40 + b"1" + b"}" * 40,
     400, "too_deep"),
    # a Host that names no host (RFC 9112: 400), not a job answered with "http:///wait?id=..."
    ("POST", "/begin?id=host", {"Host": "a b"}, None, 400, "bad_host"),
    ("GET", "/jobs", {"Host": "[::1"}, None, 400, "bad_host"),
    # numbers in a query are ASCII decimal: int() and float() alone read these as 10
    ("GET", "/wait?id=x&timeout=1_0", {}, None, 400, "bad_request"),
    ("GET", "/wait?id=x&timeout=%EF%BC%91%EF%BC%90", {}, None, 400, "bad_request"),
    ("GET", "/jobs?limit=%2010", {}, None, 422, "unprocessable_entity"),
    ("GET", "/v1/operations?pageSize=1_0", {}, None, 400, 400),
    # "//" in a path: werkzeug answered an HTML 308 to the path with one "/"
    ("POST", "/jobs/x//cancel", {}, None, 404, "not_found"),
    ("GET", "/jobs/x//steps", {}, None, 404, "not_found"),
    # an id holding "/", quoted: decoded before routing, it was answered as x's steps
    ("GET", "/jobs/x%2Fsteps", {}, None, 404, "not_found"),
    ("POST", "/jobs/x%2fcancel", {}, None, 404, "not_found"),
]
# Past gunicorn's limits: gunicorn answers before the app, in JSON too (gunicorn_wire).
GUNICORN_CASES = [
    ("GET", "/wait?id=" + "a" * 5000, {}, None, 414, "uri_too_long"),
    ("GET", "/wait?id=x", {"X-Big": "x" * 9000}, None, 431, "request_header_fields_too_large"),
    ("POST", "/begin?id=bad-host", {"Host": "a b"}, None, 400, "bad_host"),  # gunicorn lets it by
    # a leading "//": werkzeug matched the path without it (Flask's test client reads a host)
    ("POST", "//begin?id=slashes", {}, None, 404, "not_found"),
    ("GET", "//jobs", {}, None, 404, "not_found"),
    ("GET", "///metrics", {}, None, 404, "not_found"),
]
PARAMETERS = ("method", "path", "headers", "body", "status", "code")


def case_ids(cases: list[tuple]) -> list[str]:
    return [f"{c[0]} {c[1][:30]} {c[4]}" for c in cases]


def check_error(status_code: int, content_type: str, body: dict, status: int, code: str) -> None:
    """The product's error answer: this status, JSON, a machine-readable code and a message."""
    assert (status_code, content_type) == (status, "application/json"), body
    assert body["error"]["code"] == code
    assert body["error"]["message"]


@pytest.mark.parametrize(PARAMETERS, CASES, ids=case_ids(CASES))
def test_bad_input_answers_json(offline, method, path, headers, body, status, code):
    response = offline.open(path, method=method, headers=headers, data=body)

    check_error(response.status_code, response.content_type, response.get_json(), status, code)


@pytest.mark.parametrize(PARAMETERS, GUNICORN_CASES, ids=case_ids(GUNICORN_CASES))
def test_gunicorn_limits_answer_json(stack, method, path, headers, body, status, code):
    response = requests.request(method, stack.gateway_url + path, headers=headers, data=body,
                                timeout=10)

    check_error(response.status_code, response.headers["Content-Type"], response.json(), status,
                code)


def raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends `request` as is over a socket (no client library would send it malformed) and
    reads the answer to its end: status, headers (lower-cased names) and body."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_an_http_1_1_request_without_host_is_a_400(stack):
    """RFC 9112: a server MUST answer 400; its Location named gunicorn's bind address."""
    status, headers, body = raw_exchange(
        stack.gateway_url,
        b"POST /begin?id=no-host HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")

    check_error(status, headers["content-type"], json.loads(body), 400, "bad_host")
    assert "x-request-id" in headers


@pytest.mark.parametrize("request_bytes", [
    b"NOT AN HTTP REQUEST\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nA header without a colon\r\n\r\n",
    b"GET /healthz HTTP/7.1\r\nHost: x\r\n\r\n",
    b"POST /begin HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
], ids=["not-http", "header-without-colon", "bad-version", "negative-length"])
def test_gunicorn_answers_malformed_http_with_json_400(stack, request_bytes):
    status, headers, body = raw_exchange(stack.gateway_url, request_bytes)

    check_error(status, headers["content-type"], json.loads(body), 400, "bad_request")
    assert int(headers["content-length"]) == len(body)
    assert headers["x-request-id"] and headers["traceparent"].startswith("00-")



def _cut_short(url: str, path: str) -> tuple[int, dict]:
    """A POST whose client stops sending after 9 of its 50 bytes (it half-closes) and reads
    the answer."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 50\r\nConnection: close\r\n\r\n{\"a\": 12}".encode())
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize("gate", ["on", "off"])
def test_a_body_cut_short_or_chunked_past_the_limit_starts_no_job(stack, nonce, gate):
    """Neither is the request its client meant: a body shorter than its Content-Length is a
    400 `incomplete_body`, a chunked body over MAX_BODY_BYTES a 413; no job starts. With the
    admission gate on (it reads bodies first) and off."""
    url = stack.gateway_url if gate == "on" else stack.start_gateway(
        {"ADMISSION_MAX_REQUESTS": "0"}, workers=1).url
    for path, job_id in ((f"/begin?id=short-{nonce}", f"short-{nonce}"),
                         ("/jobs", f"order:short-{nonce}")):
        status, body = _cut_short(url, path)
        assert (status, body["error"]["code"]) == (400, "incomplete_body"), body
        assert requests.get(f"{url}/jobs/{job_id}", timeout=10).status_code == 404

    def chunks():  # valid JSON, padded with whitespace past the limit: chunked, no length
        yield json.dumps({"order_id": f"long-{nonce}", "items": ["x"]}).encode()
        yield from (b" " * 65536 for _ in range(20))  # 1.25 MiB

    for path, job_id in ((f"/begin?id=long-{nonce}", f"long-{nonce}"),
                         ("/jobs", f"order:long-{nonce}")):
        response = requests.post(f"{url}{path}", data=chunks(), timeout=10,
                                 headers={"Content-Type": "application/json"})
        assert_error(response, 413, "request_entity_too_large")
        assert requests.get(f"{url}/jobs/{job_id}", timeout=10).status_code == 404


@pytest.mark.parametrize("path", ["/begin", "/jobs", "/jobs/x/cancel", "/healthz"])
def test_options_answers_204_with_allow_and_no_html(offline, path):
    response = offline.options(path)

    assert response.status_code == 204
    assert "OPTIONS" in response.headers["Allow"]
    assert "text/html" not in response.headers.get("Content-Type", "")
    assert response.data == b""


def test_a_body_on_a_get_is_ignored(offline):
    response = offline.get("/healthz", data=b"stray", headers={"Content-Type": "text/plain"})

    assert response.status_code == 200


def test_limits_come_from_the_environment(monkeypatch):
    for name, value in {"MAX_BODY_BYTES": "64", "MAX_JSON_DEPTH": "3", "MAX_ID_LENGTH": "40",
                        "RESONATE_URL": NOWHERE}.items():
        monkeypatch.setenv(name, value)
    gateway = create_app().test_client()

    def begin(job_id: str, body: bytes):
        return gateway.post("/begin", query_string={"id": job_id}, data=body,
                            content_type="application/json")

    # within every limit, the request gets as far as the (absent) engine
    assert_error(begin("small", b'{"a": [[1]]}'), 503, "engine_unavailable")
    assert_error(begin("big", b'{"a": "' + b"x" * 64 + b'"}'), 413, "request_entity_too_large")
    assert_error(begin("deep", b'{"a": [[[1]]]}'), 400, "too_deep")
    assert_error(begin("i" * 41, b""), 400, "invalid_id")


@pytest.mark.parametrize("body", [
    {"__type": "subprocess.Popen", "attributes": {"args": ["touch", "PWNED"]}},
    {"deep": [1, {"x": {"__type": "builtins.list", "attributes": {}}}]},
    {"__type": ["not", "a", "name"]},
])
def test_the_sdk_reserved_key_is_refused_and_the_worker_survives(stack, nonce, body):
    """SDK 0.4.10 decodes {"__type": NAME, "attributes": {...}} by importing NAME and calling it
    with the attributes: in a body that reached a worker it would run code of the client's
    choosing, or crash the worker on every delivery of that task."""
    assert_error(stack.begin(f"reserved-{nonce}", body), 400, "reserved_key")
    assert_error(stack.poll(f"reserved-{nonce}"), 404, "not_found")

    stack.begin(f"after-{nonce}", {"nonce": nonce})
    assert stack.wait_settled(f"after-{nonce}")["status"] == "resolved"
    assert all(worker.alive() for worker in stack.workers)
