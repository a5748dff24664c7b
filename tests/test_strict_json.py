"""Strict JSON bodies: what Python's parser would accept silently is a 400 with a clear code.

Pure request validation, so the Flask test client is enough: these bodies never reach the engine.
"""

from __future__ import annotations

import pytest

from async_api.strict_json import parse_strict
from tests.support.http import assert_error

# (route, body, code, what the message must name)
REFUSED = [
    ("/begin", b'{"a": NaN}', "non_finite_number", "NaN"),
    ("/begin", b"[1, Infinity]", "non_finite_number", "Infinity"),
    ("/begin", b'{"deep": [{"x": -Infinity}]}', "non_finite_number", "-Infinity"),
    ("/begin", b'{"a": 1e999}', "non_finite_number", "1e999"),  # Python reads it as inf
    ("/begin", b"-1.5e400", "non_finite_number", "-1.5e400"),
    ("/begin", b'{"a": 1, "a": 2}', "duplicate_key", '"a"'),
    ("/begin", b"\x0b", "malformed_json", "JSON"),  # not JSON whitespace: not an empty body
    ("/begin", b'{"a": 1, "a": 1}', "duplicate_key", '"a"'),  # same value: still ambiguous
    ("/begin", b'{"outer": [{"k": {}, "j": 0, "k": []}]}', "duplicate_key", '"k"'),
    ("/begin", b'{"a": 1, "\\u0061": 2}', "duplicate_key", '"a"'),  # the same key, escaped
    # routes whose schema parses the body again see only strict JSON too
    ("/jobs", b'{"order_id": "A1", "items": ["x"], "items": ["y"]}', "duplicate_key",
     '"items"'),
    ("/price-quote", b'{"sku": "widget-1", "qty": NaN}', "non_finite_number", "NaN"),
]


@pytest.mark.parametrize(("path", "body", "code", "named"), REFUSED,
                         ids=[f"{path} {body[:40]!r}" for path, body, *_ in REFUSED])
def test_non_strict_json_is_refused_with_a_clear_code(offline, path, body, code, named):
    response = offline.post(path, data=body, content_type="application/json")

    assert named in assert_error(response, 400, code)["message"]


def test_a_huge_duplicate_key_is_not_echoed_whole(offline):
    key = "k" * 10_000
    body = f'{{"{key}": 1, "{key}": 2}}'.encode()

    response = offline.post("/begin", data=body, content_type="application/json")

    assert response.get_json()["error"]["code"] == "duplicate_key"
    assert len(response.get_json()["error"]["message"]) < 200


def test_strict_json_still_reads_every_standard_value():
    body = ('{"a": [1.5, -0.0, 1e308, 12345678901234567890, {"a": null}], "b": "NaN",'
            ' "c": {"b": true, "c": "Infinity"}}')

    assert parse_strict(body) == {
        "a": [1.5, -0.0, 1e308, 12345678901234567890, {"a": None}], "b": "NaN",
        "c": {"b": True, "c": "Infinity"}}
