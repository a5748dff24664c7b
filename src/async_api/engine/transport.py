"""HTTP to the Resonate server: the SDK's requests, sent over a plain urllib3 pool.

The SDK 0.4.10 stores describe each call as a `requests.Request` and read `.json()` of the
answer. Sent through requests' Session, every call also built cookies, hooks, redirect checks
and, unless told not to, walked the environment's proxy variables: in a burst that was 80 % of
a worker's CPU (py-spy, `make bench`). Here the same request goes straight to urllib3, which
is thread-safe and, under gevent, greenlet-safe. Every call to the server, the gateway's and the
workers', goes through `Transport.send`: its latency and errors are measured there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3

from async_api import metrics

# Connections kept per server; a caller past that waits for one (at most the call's timeout).
MAX_CONNECTIONS = 32


class Unreachable(Exception):
    """No answer from the server: refused, reset, timed out."""


@dataclass(frozen=True)
class Answer:
    """What the SDK and the engine layer read of a response."""

    status_code: int
    content: bytes

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


def call_name(method: str, path: str) -> str:
    """A call as a metric label: its method and path, with a promise's id as {id} (bounded)."""
    head, promises, _ = path.partition("/promises/")
    if promises and method.upper() != "POST":  # POST /promises/task creates: no id in it
        path = f"{head}/promises/{{id}}"
    return f"{method.upper()} {path}"


class Transport:
    """Keep-alive connections to one server, shared by every thread or greenlet of a process."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self._timeout = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        self._pool = urllib3.connection_from_url(url, maxsize=MAX_CONNECTIONS, block=True,
                                                 retries=False, timeout=self._timeout)

    def send(self, request: requests.Request) -> Answer:
        """One attempt; raises Unreachable when the server does not answer."""
        # The path alone on the request line: a proxy in between (tests/test_shutdown.py)
        # would not expect the absolute form that urllib3 sends a full URL as.
        parsed = urllib3.util.parse_url(request.url)
        url = parsed.request_uri
        if request.params:
            url += "?" + urlencode(request.params)
        headers = dict(request.headers or {})
        body = None
        if request.json is not None:
            body = json.dumps(request.json).encode()
            headers["Content-Type"] = "application/json"
        call, started = call_name(request.method, parsed.path or "/"), time.perf_counter()
        try:
            response = self._pool.request(
                request.method.upper(), url, body=body, headers=headers,
                pool_timeout=self._timeout.connect_timeout,
            )
        except urllib3.exceptions.HTTPError as exc:
            metrics.engine_call(call, time.perf_counter() - started, "unreachable")
            raise Unreachable(str(exc)) from exc
        metrics.engine_call(call, time.perf_counter() - started,
                            str(response.status) if response.status >= 400 else None)
        return Answer(response.status, response.data)
