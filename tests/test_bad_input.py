"""Every bad request gets a JSON error with the right status, never HTML or a 500."""

from __future__ import annotations

import pytest
import requests

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
    ("POST", "/begin", {"Content-Type": "application/json"}, b"\"" + b"a" * (2 << 20) + b"\"",
     413, "request_entity_too_large"),
    ("POST", "/begin?id=" + "a" * 201, {}, None, 400, "invalid_id"),
    ("POST", "/begin?id=white space", {}, None, 400, "invalid_id"),
    # a client id shaped like a workflow step's ("<id>.1") or like the service's own ids
    ("POST", "/begin?id=job-1.1", {}, None, 400, "invalid_id"),
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
    # past gunicorn's limits: it answers itself, in JSON too (gunicorn_errors)
    ("GET", "/wait?id=" + "a" * 5000, {}, None, 414, "uri_too_long"),
    ("GET", "/wait?id=x", {"X-Big": "x" * 9000}, None, 431, "request_header_fields_too_large"),
    ("POST", "/begin", {"Content-Type": "application/json"}, b'{"a": ' * 40 + b"1" + b"}" * 40,
     400, "too_deep"),
]


@pytest.mark.parametrize(("method", "path", "headers", "body", "status", "code"), CASES,
                         ids=[f"{c[0]} {c[1][:30]} {c[4]}" for c in CASES])
def test_bad_input_answers_json(stack, method, path, headers, body, status, code):
    response = requests.request(method, stack.gateway_url + path, headers=headers, data=body,
                                timeout=10)

    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_a_body_on_a_get_is_ignored(stack):
    response = requests.get(f"{stack.gateway_url}/healthz", data=b"stray",
                            headers={"Content-Type": "text/plain"}, timeout=10)

    assert response.status_code == 200


def test_limits_come_from_the_environment(stack, nonce):
    gateway = stack.start_gateway({"MAX_BODY_BYTES": "64", "MAX_JSON_DEPTH": "3",
                                   "MAX_ID_LENGTH": "40"}, workers=1)

    def begin(job_id: str, body: bytes) -> requests.Response:
        return requests.post(f"{gateway.url}/begin", params={"id": job_id}, data=body,
                             headers={"Content-Type": "application/json"}, timeout=10)

    small = begin(f"lim-{nonce[:16]}", b'{"a": [[1]]}')
    assert small.status_code == 202, small.text
    too_big = begin(f"big-{nonce[:16]}", b'{"a": "' + b"x" * 64 + b'"}')
    assert (too_big.status_code, too_big.json()["error"]["code"]) == \
        (413, "request_entity_too_large")
    too_deep = begin(f"deep-{nonce[:16]}", b'{"a": [[[1]]]}')
    assert (too_deep.status_code, too_deep.json()["error"]["code"]) == (400, "too_deep")
    too_long = begin("i" * 41, b"")
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (400, "invalid_id")


@pytest.mark.parametrize("body", [
    {"__type": "subprocess.Popen", "attributes": {"args": ["touch", "PWNED"]}},
    {"deep": [1, {"x": {"__type": "builtins.list", "attributes": {}}}]},
    {"__type": ["not", "a", "name"]},
])
def test_the_sdk_reserved_key_is_refused_and_the_worker_survives(stack, nonce, body):
    """SDK 0.4.10 decodes {"__type": NAME, "attributes": {...}} by importing NAME and calling it
    with the attributes: in a body that reached a worker it would run code of the client's
    choosing, or crash the worker on every delivery of that task."""
    refused = stack.begin(f"reserved-{nonce}", body)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "reserved_key"
    assert stack.poll(f"reserved-{nonce}").status_code == 404

    stack.begin(f"after-{nonce}", {"nonce": nonce})
    assert stack.wait_settled(f"after-{nonce}")["status"] == "resolved"
    assert all(worker.alive() for worker in stack.workers)
