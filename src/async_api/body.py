"""Checks every request's JSON body once, before any route: 415, 400 and 413 as JSON errors.

Routes then read `request.get_json()` (or webargs does), knowing the body is sane.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, request

from async_api.errors import ApiError


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
    if not raw.strip():
        return
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type",
                       "Send the body as JSON with Content-Type: application/json.")
    try:
        value = request.get_json()
    except Exception as exc:  # werkzeug's BadRequest, or RecursionError on absurd nesting
        raise ApiError(400, "malformed_json", "The body is not valid JSON.") from exc
    max_depth = current_app.extensions["async_api.settings"].max_json_depth
    if _depth(value) > max_depth:
        raise ApiError(400, "too_deep", f"The JSON body nests deeper than {max_depth} levels.")


def read_json(default: Any) -> Any:
    """The body checked by `check_json_body`, or `default` when it is empty."""
    return request.get_json() if request.get_data(cache=True).strip() else default


def install(app: Flask) -> None:
    """Checks bodies before every route."""
    app.before_request(check_json_body)
