"""Checks every request's JSON body once, before any route: 415, 400 and 413 as JSON errors.

The body is parsed strictly: NaN, Infinity, -Infinity (and numbers too large for a float, which
Python would read as infinity) and an object with the same key twice are refused, where Python's
parser would accept them silently (the last duplicate winning). Routes then read `read_json()`
(or webargs parses the body again), knowing the body is sane.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, NoReturn

from flask import Flask, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from async_api.errors import ApiError

JSON_WHITESPACE = b" \t\n\r"  # RFC 8259's four; bytes.strip() would also drop \x0b and \x0c
_PARSED = "async_api_json_body"  # where check_json_body leaves the parsed body, in flask.g


class NotStrictJson(ValueError):
    """JSON that Python's parser accepts but the standard does not allow, or that is ambiguous."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _shown(text: str, limit: int = 60) -> str:
    return json.dumps(text if len(text) <= limit else text[:limit] + "...")


def _non_finite_constant(name: str) -> NoReturn:
    raise NotStrictJson("non_finite_number",
                        f"The JSON body holds {name}, which JSON does not allow; numbers must be "
                        "finite.")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotStrictJson("non_finite_number",
                            f"The JSON body holds the number {_shown(text)}, too large to be a "
                            "finite number.")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) < len(pairs):
        counts = Counter(key for key, _ in pairs)
        duplicate = next(key for key, count in counts.items() if count > 1)
        raise NotStrictJson("duplicate_key",
                            f"An object in the JSON body has the key {_shown(duplicate)} more "
                            "than once.")
    return value


def parse_strict(raw: bytes | str) -> Any:
    """json.loads, refusing non-finite numbers and duplicate keys (NotStrictJson)."""
    return json.loads(raw, parse_constant=_non_finite_constant, parse_float=_finite_float,
                      object_pairs_hook=_unique_keys)


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def check_json_body() -> None:
    """The before_request hook: a body, if any, is JSON, within the size and depth limits."""
    if request.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return  # no route reads a body there
    raw = request.get_data(cache=True)  # past MAX_CONTENT_LENGTH this raises 413
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if len(raw) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()  # a chunked body: werkzeug stops at the limit, silently
    if request.content_length is not None and len(raw) < request.content_length:
        raise ApiError(400, "incomplete_body",  # the client went away mid-body
                       f"The body ended after {len(raw)} of its {request.content_length} bytes "
                       "(Content-Length).")
    if not raw.strip(JSON_WHITESPACE):
        return  # no body: the route's default
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type",
                       "Send the body as JSON with Content-Type: application/json.")
    setattr(g, _PARSED, decoded(raw, current_app.extensions["async_api.settings"].max_json_depth))


def decoded(raw: bytes, max_depth: int) -> Any:
    """A JSON body's value, parsed strictly, nesting at most `max_depth` levels; else the 400."""
    try:
        value = parse_strict(raw)
    except NotStrictJson as exc:
        raise ApiError(400, exc.code, str(exc)) from exc
    except (ValueError, RecursionError) as exc:  # RecursionError on absurd nesting
        raise ApiError(400, "malformed_json", "The body is not valid JSON.") from exc
    if _depth(value) > max_depth:
        raise ApiError(400, "too_deep", f"The JSON body nests deeper than {max_depth} levels.")
    return value


def read_json(default: Any) -> Any:
    """The body checked by `check_json_body`, or `default` when it is empty."""
    return g.get(_PARSED, default)


def install(app: Flask) -> None:
    """Checks bodies before every route."""
    app.before_request(check_json_body)
