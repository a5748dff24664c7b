"""A WSGI app that reads each request's body and answers the same `202` JSON: under gunicorn, as
gunicorn.conf.py sets it up, what any gateway pays a request before it does any work of its own
(bench/ceiling.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = b'{"id": "floor", "status": "pending"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("202 Accepted", HEADERS)
    return [BODY]
