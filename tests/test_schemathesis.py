"""Property-based: requests generated from the live gateway's /openapi.json, valid and not.

No answer may be a 5xx, every answer must match the documented status codes, headers and
schemas, and every error body is the product's JSON error. (schemathesis' own pytest plugin
fails on pytest 9, so this drives its strategies with hypothesis directly.)
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode

from async_api.contract import GROUPS
from async_api.engine import ReservedKey, check_value
from tests.conftest import GATEWAY_ENV

EXAMPLES_PER_OPERATION_AND_MODE = 40


def holds_reserved_key(value) -> bool:
    try:
        check_value(value)
    except ReservedKey:
        return True
    return False


def check(case) -> None:
    if case.method == "GET" and case.path == "/jobs" and case.query:
        # Only cursors the server issued are valid (signed tokens): a generated one cannot be.
        case.query.pop("cursor", None)
    if case.method == "GET" and case.path == "/v1/operations" and case.query:
        case.query.pop("pageToken", None)  # the same cursors, AIP-158's name
    # "__type" nested at any depth is refused (400); JSON Schema documents only the top level.
    assume(not holds_reserved_key(case.body))
    # A request line over gunicorn's 4094 bytes gets its 414 (tested in test_bad_input.py),
    # before the schema that this test checks is even looked at.
    assume(len(urlencode(case.query or {}, doseq=True)) < 3500)
    response = case.call_and_validate(timeout=10)
    if response.status_code >= 400:
        assert response.headers["content-type"] == ["application/json"]  # lists, lower-cased
        error = response.json()["error"]
        assert error["code"]
        assert error["message"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
def test_the_gateway_honours_its_openapi_document(make_stack, store, mode):
    # A stack of its own: the hundreds of jobs it starts must not queue ahead of other tests'.
    stack = make_stack(store=store)
    stack.start(list(GROUPS), gateway_env=GATEWAY_ENV)
    schema = schemathesis.openapi.from_url(f"{stack.gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/begin", "/wait", "/healthz", "/readyz"}

    for operation in operations:
        if mode == GenerationMode.NEGATIVE and not (operation.query or operation.body):
            continue  # nothing in it can be invalid (e.g. /healthz)
        settings(max_examples=EXAMPLES_PER_OPERATION_AND_MODE, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck))(
            given(case=operation.as_strategy(generation_mode=mode))(check)
        )()
