"""The two requests a polling client sends most, a plain `POST /begin` and `GET /wait?id=ID`,
answered before Flask sees them (PERFORMANCE.md, "What each change bought": "A poll of a
settled job skips Flask", "A plain poll of a pending job skips Flask too", "A plain begin skips
Flask too").

Flask's part of such a request (the request context, the URL rules, the query's schema, the
response hooks) was more than half of its CPU. This WSGI middleware answers them itself, as the
routes do (jobs.start, one engine get, the same bodies and headers), with the request and trace
ids, the log line and the metrics the routes give (telemetry.py), for a caller whose token is
good (auth.py). Whatever it cannot answer the same way goes on to Flask untouched: other
parameters, an escaped or malformed id, a body that is not plainly JSON, a missing token. When
its engine call failed or found another principal's job, the outcome goes to the route with the
request's span (`handed_over`, `telemetry.hand_over`): the engine is asked once, the request is
logged once, and the route answers the error as it always does.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.sansio.utils import get_host

from async_api import auth, body, contract, ids, jobs, logs, telemetry
from async_api.engine import JOB_TAG, PENDING, RESOLVED, Engine, Promise
from async_api.errors import ApiError
from async_api.jobs import OWNER_TAG
from async_api.newest import Newest
from async_api.settings import Settings

BEGIN_ROUTE, WAIT_ROUTE = "/begin", "/wait"
DEFAULT_BEGIN_BODY = {"foo": "bar"}
KEPT = 1_000  # settled answers per process: the jobs being polled now, not every job seen
PENDING_MESSAGE = "Processing in progress"
# Ids that read the same in a path, a query and a URL Flask builds (no "@", which url_for
# escapes in a query): the others take the route.
_PLAIN_NEW_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_JSON_TYPE = "application/json"
_HANDED_OVER = "async_api.plain.outcome"  # environ key: (job id, Promise or exception)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Render = Callable[[dict[str, Any]], bytes]


@dataclass(frozen=True, slots=True)
class SettledWait:
    """A settled job's `/wait` body, and who may read it."""

    owner: str | None  # the principal that started the job; None: nobody's
    body: bytes


class Answers:
    """The bodies of `/begin` and `/wait`, as the app's JSON provider renders them (`render`);
    a settled job's `/wait` body never changes, so it is rendered once per process and kept
    (one memory per app, as the engine's ids are one server's)."""

    def __init__(self, render: Render) -> None:
        self.render = render
        self.settled: Newest[str, SettledWait] = Newest(KEPT)

    def begun(self, job: Promise, wait_url: str) -> bytes:
        return self.render({"promise": job.id, "status": job.state, "wait": wait_url})

    def wait(self, job: Promise) -> bytes:
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


class PlainRequests:
    """WSGI middleware in front of the app whose `/begin` and `/wait` routes share `answers`."""

    def __init__(self, app: WsgiApp, answers: Answers, engine: Engine,
                 settings: Settings) -> None:
        self.app, self.answers, self.engine, self.settings = app, answers, engine, settings
        api_tokens = auth.principals(settings.api_tokens)
        self.begin_tokens = auth.tokens_for(BEGIN_ROUTE, settings, api_tokens)
        self.wait_tokens = auth.tokens_for(WAIT_ROUTE, settings, api_tokens)
        self.pending_headers = [("Retry-After", str(settings.retry_after_seconds))]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO"), environ.get("REQUEST_METHOD")
        if path == WAIT_ROUTE and method == "GET":
            return self._wait(environ, start_response)
        if path == BEGIN_ROUTE and method == "POST":
            return self._begin(environ, start_response)
        return self.app(environ, start_response)

    def _wait(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        job_id = _queried_id(environ)
        if (job_id is None or _has_body(environ)
                or not ids.well_formed(job_id, ids.lookup_length(self.settings.max_id_length))):
            return self.app(environ, start_response)
        principal = self._principal(environ, self.wait_tokens)
        if principal is False:
            return self.app(environ, start_response)  # the route's 401
        kept = self.answers.settled.get(job_id)
        if kept is not None and not self._may_see(principal, kept.owner):
            return self.app(environ, start_response)  # the route's 404
        span = _opened(environ, job_id)
        if kept is not None:
            return _answer(start_response, span, "GET", WAIT_ROUTE, "200 OK", kept.body, [])
        try:
            job = self.engine.get(job_id)
        except Exception as error:  # the route raises it: its error handlers answer
            return self._hand_over(environ, start_response, span, job_id, error)
        if JOB_TAG not in job.tags or not self._may_see(principal, job.tags.get(OWNER_TAG)):
            return self._hand_over(environ, start_response, span, job_id, job)  # its 404
        return _answer(start_response, span, "GET", WAIT_ROUTE, "200 OK", self.answers.wait(job),
                       self.pending_headers if job.pending else [])

    def _begin(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        job_id = _queried_id(environ) if environ.get("QUERY_STRING") else ids.mint()
        if job_id is None or not ids.well_formed(job_id, self.settings.max_id_length,
                                                 _PLAIN_NEW_ID):
            return self.app(environ, start_response)
        scheme = environ["wsgi.url_scheme"]
        host = get_host(scheme, environ.get("HTTP_HOST"))  # as url_for takes it
        raw = _plain_body(environ, self.settings.max_body_bytes) if host else None
        if raw is None:
            return self.app(environ, start_response)
        try:
            args = [body.decoded(raw, self.settings.max_json_depth)
                    if raw.strip(body.JSON_WHITESPACE) else DEFAULT_BEGIN_BODY]
        except ApiError:  # the route's 400, from the body it reads again
            return self.app(environ, start_response)
        principal = self._principal(environ, self.begin_tokens)
        if principal is False:
            return self.app(environ, start_response)  # the route's 401
        span = _opened(environ, job_id)
        try:
            job = jobs.start(self.engine, self.settings, contract.FOO, job_id, args,
                             {} if principal is None else {OWNER_TAG: principal})
        except Exception as error:  # the route raises it: its error handlers answer
            return self._hand_over(environ, start_response, span, job_id, error)
        if not self._may_see(principal, job.tags.get(OWNER_TAG)):
            return self._hand_over(environ, start_response, span, job_id, job)  # its 409
        root = environ.get("SCRIPT_NAME", "").rstrip("/")
        wait_url = f"{root}{WAIT_ROUTE}?id={job_id}"
        origin = f"{scheme}://{host}"
        headers = [("Operation-Location", f"{origin}{root}/jobs/{job_id}/operation"),
                   ("Location", origin + wait_url)]
        return _answer(start_response, span, "POST", BEGIN_ROUTE, "202 ACCEPTED",
                       self.answers.begun(job, wait_url), headers)

    def _principal(self, environ: dict[str, Any],
                   tokens: dict[str, str] | None) -> str | bool | None:
        """The caller's principal; None when auth is off, False when its token is not good."""
        if tokens is None:
            return None
        return auth.principal_of(environ.get("HTTP_AUTHORIZATION"), tokens) or False

    def _may_see(self, principal: str | None, owner: str | None) -> bool:
        return auth.may_see(principal, owner, self.settings.admin_principals)

    def _hand_over(self, environ: dict[str, Any], start_response: StartResponse,
                   span: telemetry.Span, job_id: str,
                   outcome: Promise | Exception) -> Iterable[bytes]:
        environ[_HANDED_OVER] = (job_id, outcome)
        telemetry.hand_over(environ, span)
        return self.app(environ, start_response)


def minted(environ: dict[str, Any]) -> str:
    """A new id for a begin that sent none; the one it already has if this middleware handed
    it over after starting it, so that its engine call is not made for a second job."""
    handed_id, _ = environ.get(_HANDED_OVER, (None, None))
    return handed_id or ids.mint()


def handed_over(environ: dict[str, Any], job_id: str) -> Promise | None:
    """The job this middleware started or read for the request, if it did (raising what that
    raised); None: the route calls the engine itself."""
    handed_id, outcome = environ.pop(_HANDED_OVER, (None, None))
    if handed_id != job_id:
        return None
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _opened(environ: dict[str, Any], job_id: str) -> telemetry.Span:
    return telemetry.opened(environ.get("HTTP_X_REQUEST_ID"), environ.get("HTTP_TRACEPARENT"),
                            job_id=job_id)


def _answer(start_response: StartResponse, span: telemetry.Span, method: str, route: str,
            status: str, answer: bytes, headers: list[tuple[str, str]]) -> Iterable[bytes]:
    try:
        headers = [("Content-Type", _JSON_TYPE), ("Content-Length", str(len(answer))), *headers,
                   *telemetry.closed(span, method, route, int(status[:3]))]
    finally:
        logs.unbind(span.token)
    start_response(status, headers)
    return [answer]


def _queried_id(environ: dict[str, Any]) -> str | None:
    """ID of a query that is `id=ID` and nothing else, as sent. An id holds no character a
    query string escapes (ids.py), so a well-formed id sent as it is reads the same decoded;
    one sent escaped, or with another parameter, goes to Flask, which decodes it."""
    name, _, job_id = environ.get("QUERY_STRING", "").partition("=")
    return job_id if name == "id" else None


def _has_body(environ: dict[str, Any]) -> bool:
    return (environ.get("CONTENT_LENGTH", "0") not in ("", "0")
            or "HTTP_TRANSFER_ENCODING" in environ)


def _plain_body(environ: dict[str, Any], max_bytes: int) -> bytes | None:
    """The body of a request that sends none or plain JSON within `max_bytes`, read and put
    back for the app; None for any other (the route answers it: 413, 415, a chunked or
    compressed body)."""
    if not _has_body(environ):
        return b""
    length = environ.get("CONTENT_LENGTH", "")
    if (environ.get("CONTENT_TYPE") != _JSON_TYPE or "HTTP_TRANSFER_ENCODING" in environ
            or "HTTP_CONTENT_ENCODING" in environ
            or not length.isdigit() or int(length) > max_bytes):
        return None
    raw = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = io.BytesIO(raw)
    return raw if len(raw) == int(length) else None  # cut short: the route's 400
