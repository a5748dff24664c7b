"""Polls of a settled job, answered from memory before Flask sees them (README, "Benchmark",
"A poll of a settled job skips Flask": 2.3 times the polls a second).

A settled job's `/wait` answer never changes: the route renders it once per process and keeps
the bytes (resources/polling.py). Sending them again through Flask (the request context, the
URL rules, the query's schema, the response hooks) was still more than half of a poll's CPU.
This WSGI middleware sends the kept answer for the plainest poll, `GET /wait?id=ID` and
nothing else, when the caller may see the job (auth.py), with the request and trace ids, the
log line and the metrics the route's answer has (telemetry.py). Any other request, and any
poll it could not answer the same way (a long-poll, an escaped id, a token that does not see
the job), goes on to Flask, which answers as always."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from async_api import auth, logs, telemetry
from async_api.newest import Newest
from async_api.settings import Settings

WAIT_ROUTE = "/wait"
KEPT = 1_000  # answers per process: the jobs being polled now, not every job seen
_JSON = ("Content-Type", "application/json")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class SettledWait:
    """A settled job's `/wait` body, and who may read it."""

    owner: str | None  # the principal that started the job; None: nobody's
    body: bytes


class SettledWaits:
    """WSGI middleware around the app whose `/wait` route fills `answers`."""

    def __init__(self, app: WsgiApp, answers: Newest[str, SettledWait],
                 settings: Settings) -> None:
        self.app, self.answers = app, answers
        self.tokens = auth.tokens_for(WAIT_ROUTE, settings, auth.principals(settings.api_tokens))
        self.admins = settings.admin_principals

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        job_id = _polled_id(environ)
        answer = self.answers.get(job_id) if job_id else None
        if answer is None or not self._may_see(environ, answer.owner):
            return self.app(environ, start_response)
        span = telemetry.opened(environ.get("HTTP_X_REQUEST_ID"), environ.get("HTTP_TRACEPARENT"),
                                job_id=job_id)
        try:
            headers = telemetry.closed(span, "GET", WAIT_ROUTE, 200)
        finally:
            logs.unbind(span.token)
        start_response("200 OK", [_JSON, ("Content-Length", str(len(answer.body))), *headers])
        return [answer.body]

    def _may_see(self, environ: dict[str, Any], owner: str | None) -> bool:
        if self.tokens is None:  # auth is off
            return True
        principal = auth.principal_of(environ.get("HTTP_AUTHORIZATION"), self.tokens)
        return principal is not None and auth.may_see(principal, owner, self.admins)


def _polled_id(environ: dict[str, Any]) -> str | None:
    """ID of `GET /wait?id=ID` without a body, as sent. An id holds no character a query string
    escapes (ids.py), so a remembered id sent as it is reads the same decoded; one sent escaped,
    or with another parameter, is not found in memory and goes to Flask, which decodes it."""
    if (environ.get("PATH_INFO") != WAIT_ROUTE or environ.get("REQUEST_METHOD") != "GET"
            or environ.get("CONTENT_LENGTH", "0") not in ("", "0")
            or "HTTP_TRANSFER_ENCODING" in environ):
        return None
    name, _, job_id = environ.get("QUERY_STRING", "").partition("=")
    return job_id if name == "id" else None
