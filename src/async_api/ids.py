"""Job ids: checked against a length limit and a safe alphabet, or minted when absent."""

from __future__ import annotations

import uuid

from async_api.errors import ApiError
from async_api.settings import Settings


def mint() -> str:
    return str(uuid.uuid4())


def checked(job_id: str, settings: Settings) -> str:
    """Returns the id unchanged, or raises a 400 that says what an id may be."""
    if len(job_id) > settings.max_id_length:
        raise ApiError(400, "invalid_id", f"The id is longer than {settings.max_id_length} "
                       "characters.")
    if not settings.id_pattern.fullmatch(job_id):
        raise ApiError(400, "invalid_id", "An id starts with a letter or digit and holds only "
                       "letters, digits and . _ : @ -")
    return job_id
