"""Reads a request's JSON body with the product's rules: 415, 400 and 413 as JSON errors."""

from __future__ import annotations

import json
from typing import Any

from flask import request

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


def read_json(default: Any, max_depth: int) -> Any:
    """The decoded body, or `default` when the body is empty."""
    raw = request.get_data(cache=True)  # past MAX_CONTENT_LENGTH this raises 413
    if not raw.strip():
        return default
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type",
                       "Send the body as JSON with Content-Type: application/json.")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "malformed_json", f"The body is not valid JSON: {exc}") from exc
    if _depth(value) > max_depth:
        raise ApiError(400, "too_deep", f"The JSON body nests deeper than {max_depth} levels.")
    return value
