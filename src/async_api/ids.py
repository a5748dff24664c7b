"""Job ids: checked against a length limit and a safe alphabet, or minted when absent.

Two alphabets. Ids a client chooses for new work (?id=, order_id, sku) hold no "." (the engine
names a workflow's steps "<id>.1", "<id>.2", ...: a client id of that shape would collide with
one, and the collision ends the worker) and no ":" (the service's own ids: order:A1, quote:...,
<id>:report). Ids to look up may hold both, and be DERIVED_ROOM longer: the service's own ids
add to a client's (order:<200 characters>:attempt-2), and each must stay reachable.
"""

from __future__ import annotations

import re
import uuid

from werkzeug.routing import BaseConverter

from async_api.errors import ApiError
from async_api.settings import Settings

# What the service's own ids (contract.py) add to a client's id, at most: "order:" and
# ":attempt-N" together take 15 characters and N's digits.
DERIVED_ROOM = 32

NEW_ID_REGEX = r"[A-Za-z0-9][A-Za-z0-9_@-]*"
NEW_ID_PATTERN = re.compile(NEW_ID_REGEX)  # always with fullmatch
NEW_ID_RULE = "letters, digits and _ @ - only, starting with a letter or digit"

ID_REGEX = r"[A-Za-z0-9][A-Za-z0-9._:@-]*"
ID_PATTERN = re.compile(ID_REGEX)  # always with fullmatch
ID_RULE = "letters, digits and . _ : @ - only, starting with a letter or digit"


class IdConverter(BaseConverter):
    """`<id:job_id>` in a route: a path segment that is a well-formed id, or no match (404)."""

    regex = ID_REGEX


class NewIdConverter(BaseConverter):
    """`<new_id:order_id>` in a route that starts work: a well-formed client id, or 404."""

    regex = NEW_ID_REGEX


def mint() -> str:
    """A fresh id for a client that sent none."""
    return str(uuid.uuid4())


def lookup_length(max_id_length: int) -> int:
    """The longest id to look up: a client's longest, and what the service's own ids add."""
    return max_id_length + DERIVED_ROOM


def well_formed(job_id: str, max_length: int, pattern: re.Pattern[str] = ID_PATTERN) -> bool:
    """Whether `job_id` is within `max_length` and matches `pattern`, without the 400."""
    return len(job_id) <= max_length and pattern.fullmatch(job_id) is not None


def _check(job_id: str, max_length: int, pattern: re.Pattern[str], rule: str) -> str:
    if len(job_id) > max_length:
        raise ApiError(400, "invalid_id", f"The id is longer than {max_length} characters.")
    if not pattern.fullmatch(job_id):
        raise ApiError(400, "invalid_id", f"An id holds {rule}.")
    return job_id


def checked(job_id: str, settings: Settings) -> str:
    """An id to look up, unchanged, or a 400 that says what an id may be."""
    return _check(job_id, lookup_length(settings.max_id_length), ID_PATTERN, ID_RULE)


def chosen(job_id: str, settings: Settings) -> str:
    """An id a client chose for new work, unchanged, or a 400 that says what it may be."""
    return _check(job_id, settings.max_id_length, NEW_ID_PATTERN, NEW_ID_RULE)
