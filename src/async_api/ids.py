"""Job ids: checked against a length limit and a safe alphabet, or minted when absent."""

from __future__ import annotations

import re
import uuid

from werkzeug.routing import BaseConverter

from async_api.errors import ApiError
from async_api.settings import Settings

# Safe in URLs, promise ids and logs: letters, digits and . _ : @ -, starting alphanumeric.
ID_REGEX = r"[A-Za-z0-9][A-Za-z0-9._:@-]*"
ID_PATTERN = re.compile(ID_REGEX)  # always with fullmatch
ID_RULE = "letters, digits and . _ : @ - only, starting with a letter or digit"


class IdConverter(BaseConverter):
    """`<id:job_id>` in a route: a path segment that is a well-formed id, or no match (404)."""

    regex = ID_REGEX


def mint() -> str:
    return str(uuid.uuid4())


def checked(job_id: str, settings: Settings) -> str:
    """Returns the id unchanged, or raises a 400 that says what an id may be."""
    if len(job_id) > settings.max_id_length:
        raise ApiError(400, "invalid_id", f"The id is longer than {settings.max_id_length} "
                       "characters.")
    if not ID_PATTERN.fullmatch(job_id):
        raise ApiError(400, "invalid_id", f"An id holds {ID_RULE}.")
    return job_id
