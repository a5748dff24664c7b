"""Plain polls, `GET /wait?id=ID` and nothing else, answered before Flask sees them (README,
"Benchmark": "A poll of a settled job skips Flask", "So does a plain poll of a pending job").

Flask's part of a poll (the request context, the URL rules, the query's schema, the response
hooks) was more than half of its CPU. This WSGI middleware reads the job itself (one engine
get; none for a settled job, which each process keeps) and sends the route's answer, with the
request and trace ids, the log line and the metrics the route gives (telemetry.py), when the
caller may see the job (auth.py). Whatever it cannot answer the same way goes on to Flask: a
long-poll, an escaped or malformed id, a missing token, and a read that found no job of the
caller's or failed. For the last two the read is handed to the route with the request's span
(`handed_over`), so that the engine is asked once and the request is logged once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from async_api import auth, ids, logs, telemetry
from async_api.engine import JOB_TAG, PENDING, RESOLVED, Engine, Promise
from async_api.jobs import OWNER_TAG
from async_api.newest import Newest
from async_api.settings import Settings

WAIT_ROUTE = "/wait"
KEPT = 1_000  # answers per process: the jobs being polled now, not every job seen
PENDING_MESSAGE = "Processing in progress"
_JSON = ("Content-Type", "application/json")
_READ = "async_api.plain_waits.read"  # environ key: the job read here, for the route

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Render = Callable[[dict[str, Any]], bytes]


@dataclass(frozen=True, slots=True)
class SettledWait:
    """A settled job's `/wait` body, and who may read it."""

    owner: str | None  # the principal that started the job; None: nobody's
    body: bytes


class WaitAnswers:
    """The `/wait` body of each job, as the route's JSON provider renders it; a settled one
    never changes, so it is rendered once per process and kept (one memory per app, as the
    engine's ids are one server's)."""

    def __init__(self, render: Render) -> None:
        self.render = render
        self.settled: Newest[str, SettledWait] = Newest(KEPT)

    def body(self, job: Promise) -> bytes:
        if job.state == PENDING:
            return self.render({"status": PENDING, "promise_id": job.id,
                                "message": PENDING_MESSAGE})
        kept = self.settled.get(job.id)
        if kept is None:
            outcome = "result" if job.state == RESOLVED else "error"
            kept = SettledWait(job.tags.get(OWNER_TAG), self.render(
                {"status": job.state, "promise_id": job.id, outcome: job.value}))
            self.settled.remember(job.id, kept)
        return kept.body


class PlainWaits:
    """WSGI middleware in front of the app whose `/wait` route shares `answers`."""

    def __init__(self, app: WsgiApp, answers: WaitAnswers, engine: Engine,
                 settings: Settings) -> None:
        self.app, self.answers, self.engine = app, answers, engine
        self.tokens = auth.tokens_for(WAIT_ROUTE, settings, auth.principals(settings.api_tokens))
        self.admins = settings.admin_principals
        self.max_id_length = settings.max_id_length
        self.pending_headers = [("Retry-After", str(settings.retry_after_seconds))]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        job_id = _polled_id(environ)
        if job_id is None or not ids.well_formed(job_id, self.max_id_length):
            return self.app(environ, start_response)
        principal = None
        if self.tokens is not None:  # auth is on
            principal = auth.principal_of(environ.get("HTTP_AUTHORIZATION"), self.tokens)
            if principal is None:  # the route's 401
                return self.app(environ, start_response)
        kept = self.answers.settled.get(job_id)
        if kept is not None and not auth.may_see(principal, kept.owner, self.admins):
            return self.app(environ, start_response)  # the route's 404
        span = telemetry.opened(environ.get("HTTP_X_REQUEST_ID"), environ.get("HTTP_TRACEPARENT"),
                                job_id=job_id)
        headers: list[tuple[str, str]] = []
        if kept is not None:
            body = kept.body
        else:
            try:
                job = self.engine.get(job_id)
            except Exception as error:  # the route raises it: its error handlers answer
                return self._hand_over(environ, start_response, span, job_id, error)
            if JOB_TAG not in job.tags or not auth.may_see(principal, job.tags.get(OWNER_TAG),
                                                          self.admins):
                return self._hand_over(environ, start_response, span, job_id, job)
            body = self.answers.body(job)
            if job.pending:
                headers = self.pending_headers
        try:
            headers = [_JSON, ("Content-Length", str(len(body))), *headers,
                       *telemetry.closed(span, "GET", WAIT_ROUTE, 200)]
        finally:
            logs.unbind(span.token)
        start_response("200 OK", headers)
        return [body]

    def _hand_over(self, environ: dict[str, Any], start_response: StartResponse,
                   span: telemetry.Span, job_id: str,
                   read: Promise | Exception) -> Iterable[bytes]:
        environ[_READ] = (job_id, read)
        telemetry.hand_over(environ, span)
        return self.app(environ, start_response)


def handed_over(environ: dict[str, Any], job_id: str) -> Promise | None:
    """The job this middleware read for the request, if it did (raising what the read
    raised); None: the route reads it."""
    read_id, read = environ.pop(_READ, (None, None))
    if read_id != job_id:
        return None
    if isinstance(read, Exception):
        raise read
    return read


def _polled_id(environ: dict[str, Any]) -> str | None:
    """ID of `GET /wait?id=ID` without a body, as sent. An id holds no character a query string
    escapes (ids.py), so a well-formed id sent as it is reads the same decoded; one sent
    escaped, or with another parameter, goes to Flask, which decodes it."""
    if (environ.get("PATH_INFO") != WAIT_ROUTE or environ.get("REQUEST_METHOD") != "GET"
            or environ.get("CONTENT_LENGTH", "0") not in ("", "0")
            or "HTTP_TRANSFER_ENCODING" in environ):
        return None
    name, _, job_id = environ.get("QUERY_STRING", "").partition("=")
    return job_id if name == "id" else None
