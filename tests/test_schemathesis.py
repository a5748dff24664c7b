"""Property-based: requests generated from the live gateway's /openapi.json, valid and not.

No answer may be a 5xx, every answer must match the documented status codes, headers and
schemas, and every error body is the product's JSON error. Invalid cases include invalid path
parameters; webhook cases are signed, so their bodies are fuzzed past the signature check; a
generated cursor is replaced by one the server issued. (schemathesis' own pytest plugin
fails on pytest 9, so this drives its strategies with hypothesis directly.)
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings, strategies
from schemathesis import GenerationMode
from schemathesis.core import NOT_SET

from async_api.body import JSON_WHITESPACE
from async_api.contract import GROUPS
from async_api.engine import ReservedKey, check_value
from async_api.resources.webhooks import SIGNATURE_HEADER, sign
from tests.conftest import GATEWAY_ENV

EXAMPLES_PER_OPERATION_AND_MODE = 40


def holds_reserved_key(value) -> bool:
    try:
        check_value(value)
    except ReservedKey:
        return True
    return False


def signed(case) -> dict:
    """A webhook case as its sender makes it: the generated body, serialized here, sent with its
    HMAC signature, so the body gets past the signature check and is itself fuzzed."""
    if case.body is NOT_SET:
        body = b""
    elif isinstance(case.body, bytes):  # a negative case's non-JSON body
        body = case.body
    else:
        body = json.dumps(case.body).encode()
    return {"data": body,
            "headers": {"Content-Type": "application/json",
                        SIGNATURE_HEADER: sign(GATEWAY_ENV["WEBHOOK_SECRET"], body)}}


def check(case, cursor: str) -> None:
    if case.method == "GET" and case.path == "/jobs" and isinstance(
            (case.query or {}).get("cursor"), str) and len(case.query["cursor"]) <= 2000:
        # Only cursors the server issued are valid: a cursor that is valid by the schema
        # becomes a real one (of another page, limit or state: any issued cursor is taken).
        case.query["cursor"] = cursor
    if case.method == "GET" and case.path == "/v1/operations" and isinstance(
            (case.query or {}).get("pageToken"), str) and len(case.query["pageToken"]) <= 2000:
        case.query["pageToken"] = cursor  # the same cursors, AIP-158's name
    # A body of JSON whitespace only is no body (body.py): the route's default, not an error.
    assume(not (isinstance(case.body, bytes) and not case.body.strip(JSON_WHITESPACE)))
    # "__type" nested at any depth is refused (400); JSON Schema documents only the top level.
    assume(not holds_reserved_key(case.body))
    # A request line over gunicorn's 4094 bytes gets its 414 (tested in test_bad_input.py),
    # before the schema that this test checks is even looked at.
    assume(len(urlencode(case.query or {}, doseq=True)) < 3500)
    extra = signed(case) if case.path.startswith("/webhooks/") else {}
    response = case.call_and_validate(timeout=10, **extra)
    if response.status_code >= 400:
        assert response.headers["content-type"] == ["application/json"]  # lists, lower-cased
        error = response.json()["error"]
        assert error["code"]
        assert error["message"]


def issued_cursors(stack) -> list[str]:
    """Real cursors: a few jobs, then the next_cursor of several listings."""
    for n in range(3):
        stack.begin(f"seed-{n}", {"n": n})
    for n in range(3):
        stack.wait_settled(f"seed-{n}")
    cursors = [stack.get("/jobs", params=params).json()["next_cursor"]
               for params in ({"limit": 1}, {"limit": 2}, {"limit": 1, "state": "resolved"})]
    assert all(cursors), cursors
    return cursors


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_the_gateway_honours_its_openapi_document(make_stack, store, mode):
    # A stack of its own: the hundreds of jobs it starts must not queue ahead of other tests'.
    stack = make_stack(store=store)
    stack.start(list(GROUPS), gateway_env=GATEWAY_ENV)
    cursors = issued_cursors(stack)
    schema = schemathesis.openapi.from_url(f"{stack.gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/begin", "/wait", "/healthz", "/readyz"}

    for operation in operations:
        if mode == GenerationMode.NEGATIVE and not (
                operation.query or operation.body or operation.path_parameters):
            continue  # nothing in it can be invalid (e.g. /healthz)
        settings(max_examples=EXAMPLES_PER_OPERATION_AND_MODE, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck))(
            given(case=operation.as_strategy(generation_mode=mode),
                  cursor=strategies.sampled_from(cursors))(check)
        )()
