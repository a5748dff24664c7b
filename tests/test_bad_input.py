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
    ("POST", "/begin", {"Content-Type": "text/plain"}, b"hello", 415, "unsupported_media_type"),
    ("POST", "/begin", {"Content-Type": "application/json"}, b"[" * 100 + b"]" * 100, 400,
     "too_deep"),
    ("POST", "/begin", {"Content-Type": "application/json"}, b"\"" + b"a" * (2 << 20) + b"\"",
     413, "request_entity_too_large"),
    ("POST", "/begin?id=" + "a" * 201, {}, None, 400, "invalid_id"),
    ("POST", "/begin?id=white space", {}, None, 400, "invalid_id"),
    ("POST", "/begin?id=%C3%A9t%C3%A9", {}, None, 400, "invalid_id"),
    ("GET", "/wait?id=", {}, None, 400, "invalid_id"),
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
