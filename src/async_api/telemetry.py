"""The gateway's side of logs and metrics: each request gets a request id and a trace context,
and ends with one log line and its metrics; GET /metrics serves them to Prometheus.

The hooks are installed before any other (auth, body checks), so that a request those refuse
is timed, logged and counted like any other.
"""

from __future__ import annotations

import contextvars
import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, request

from async_api import logs, metrics

REQUEST_ID_HEADER = logs.REQUEST_ID_HEADER
TRACEPARENT_HEADER = logs.TRACEPARENT_HEADER
METRICS_PATH = "/metrics"
_UNMATCHED = "(unmatched)"  # the route of a request no URL rule matched (a 404)
_STATE = "async_api_telemetry"  # where a request's Span waits, in flask.g
_HANDED_OVER = "async_api.telemetry.span"  # environ key: a span opened before Flask

_log = logging.getLogger("async_api.requests")


@dataclass(frozen=True, slots=True)
class Span:
    """A request being served: when it started, its ids, and the log context bound for it."""

    started: float
    request_id: str
    traceparent: str
    token: contextvars.Token[Any]


def opened(sent_request_id: str | None, sent_traceparent: str | None, **fields: Any) -> Span:
    """A request's ids (those it sent, when well-formed) bound to its log lines, with `fields`."""
    started = time.perf_counter()
    request_id = logs.request_id(sent_request_id)
    trace_id, traceparent = logs.new_span(sent_traceparent)
    token = logs.bind(request_id=request_id, trace_id=trace_id, traceparent=traceparent,
                      **fields)
    return Span(started, request_id, traceparent, token)


def closed(span: Span, method: str, route: str, status: int) -> list[tuple[str, str]]:
    """Counts and logs the answered request; the headers every answer carries."""
    seconds = time.perf_counter() - span.started
    metrics.http_request(method, route, status, seconds)
    _log.info("request", extra=logs.fields(method=method, route=route, status=status,
                                           duration_ms=round(seconds * 1000, 2)))
    return [(REQUEST_ID_HEADER, span.request_id), (TRACEPARENT_HEADER, span.traceparent)]


def hand_over(environ: dict[str, Any], span: Span) -> None:
    """Gives Flask a request whose span a middleware opened (plain.py): it is logged
    and counted once, timed from when it came."""
    environ[_HANDED_OVER] = span


def _begin() -> None:
    span = request.environ.pop(_HANDED_OVER, None) or opened(
        request.headers.get(REQUEST_ID_HEADER), request.headers.get(TRACEPARENT_HEADER))
    setattr(g, _STATE, span)


def _end(response: Response) -> Response:
    span = getattr(g, _STATE, None)
    if span is None:  # a hook registered before ours failed the request
        return response
    route = request.url_rule.rule if request.url_rule is not None else _UNMATCHED
    for name, value in closed(span, request.method, route, response.status_code):
        response.headers[name] = value
    return response


def _forget(_: BaseException | None) -> None:
    span = g.pop(_STATE, None)
    if span is not None:
        logs.unbind(span.token)


def serve_metrics() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


def install(app: Flask) -> None:
    """Call first in create_app: the hooks must run before auth and the body checks."""
    app.before_request(_begin)
    app.after_request(_end)
    app.teardown_request(_forget)
    app.add_url_rule(METRICS_PATH, "metrics", serve_metrics, methods=["GET"])
