"""The gateway's side of logs and metrics: each request gets a request id and a trace context,
and ends with one log line and its metrics; GET /metrics serves them to Prometheus.

The hooks are installed before any other (auth, body checks), so that a request those refuse
is timed, logged and counted like any other.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from async_api import logs, metrics

REQUEST_ID_HEADER = logs.REQUEST_ID_HEADER
TRACEPARENT_HEADER = logs.TRACEPARENT_HEADER
METRICS_PATH = "/metrics"
_UNMATCHED = "(unmatched)"  # the route of a request no URL rule matched (a 404)
_STATE = "async_api_telemetry"  # where a request's start, ids and context token wait, in flask.g

_log = logging.getLogger("async_api.requests")


def _begin() -> None:
    request_id = logs.request_id(request.headers.get(REQUEST_ID_HEADER))
    trace_id, traceparent = logs.new_span(request.headers.get(TRACEPARENT_HEADER))
    token = logs.bind(request_id=request_id, trace_id=trace_id, traceparent=traceparent)
    setattr(g, _STATE, (time.perf_counter(), request_id, traceparent, token))


def _end(response: Response) -> Response:
    state = getattr(g, _STATE, None)
    if state is None:  # a hook registered before ours failed the request
        return response
    started, request_id, traceparent, _ = state
    seconds = time.perf_counter() - started
    route = request.url_rule.rule if request.url_rule is not None else _UNMATCHED
    metrics.http_request(request.method, route, response.status_code, seconds)
    response.headers[REQUEST_ID_HEADER] = request_id
    response.headers[TRACEPARENT_HEADER] = traceparent
    _log.info("request", extra=logs.fields(method=request.method, route=route,
                                           status=response.status_code,
                                           duration_ms=round(seconds * 1000, 2)))
    return response


def _forget(_: BaseException | None) -> None:
    state = g.pop(_STATE, None)
    if state is not None:
        logs.unbind(state[3])


def serve_metrics() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


def install(app: Flask) -> None:
    """Call first in create_app: the hooks must run before auth and the body checks."""
    app.before_request(_begin)
    app.after_request(_end)
    app.teardown_request(_forget)
    app.add_url_rule(METRICS_PATH, "metrics", serve_metrics, methods=["GET"])
