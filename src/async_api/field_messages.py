"""webargs' validation messages as (field, message) pairs: the gateway lists them as a Google
BadRequest's fieldViolations (errors.py), the CLI names them in a usage error (cli.py). No
Flask here: the CLI reads them too."""

from __future__ import annotations

from typing import Any


def field_messages(details: Any) -> list[tuple[str, str]]:
    """(field, message) of webargs' messages, {location: {field: [message, ...]}}; nested
    fields are joined with dots."""
    if not isinstance(details, dict):
        return []
    return [pair for fields in details.values() for pair in flattened(fields)]


def flattened(messages: Any, path: str = "") -> list[tuple[str, str]]:
    """(field, message) of one field's messages (a list, or by item or key when nested)."""
    if isinstance(messages, dict):
        return [pair for key, inner in messages.items()
                for pair in flattened(inner, f"{path}.{key}" if path else str(key))]
    if isinstance(messages, list):
        return [(path, str(message)) for message in messages]
    return [(path, str(messages))]
