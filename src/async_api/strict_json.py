"""Strict JSON: what the gateway accepts as a JSON body, and the CLI as a job's arguments.

NaN, Infinity, -Infinity (and numbers too large for a float, which Python would read as
infinity) and an object with the same key twice are refused, where Python's parser would accept
them silently (the last duplicate winning). No Flask here: the CLI parses with it too.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, NoReturn


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
