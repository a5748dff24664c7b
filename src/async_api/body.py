"""Checks every request's JSON body once, before any route: 415, 400 and 413 as JSON errors.

The body is parsed strictly (async_api.strict_json). Routes then read `read_json()` (or webargs
parses the body again), knowing the body is sane.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from async_api.errors import ApiError
from async_api.strict_json import NotStrictJson, parse_strict

JSON_WHITESPACE = b" \t\n\r"  # RFC 8259's four; bytes.strip() would also drop \x0b and \x0c
_PARSED = "async_api_json_body"  # where check_json_body leaves the parsed body, in flask.g


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
    if request.content_encoding not in (None, "", "identity"):  # it would be read as sent
        raise ApiError(415, "unsupported_content_encoding",
                       f"The body is sent with Content-Encoding: {request.content_encoding}; "
                       "send it uncompressed.", headers={"Accept-Encoding": "identity"})
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
    except RecursionError as exc:  # nesting too deep for the parser itself
        raise _too_deep(max_depth) from exc
    except ValueError as exc:
        raise ApiError(400, "malformed_json", "The body is not valid JSON.") from exc
    if _depth(value) > max_depth:
        raise _too_deep(max_depth)
    return value


def _too_deep(max_depth: int) -> ApiError:
    return ApiError(400, "too_deep", f"The JSON body nests deeper than {max_depth} levels.")


def read_json(default: Any) -> Any:
    """The body checked by `check_json_body`, or `default` when it is empty."""
    return g.get(_PARSED, default)


def install(app: Flask) -> None:
    """Checks bodies before every route."""
    app.before_request(check_json_body)
