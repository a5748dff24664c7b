"""Jobs: the one way every job is started, and the words for a job's state.

Flask-free on purpose: the gateway's routes and the workers (a workflow that starts a job of its
own) both start jobs here, so every job gets the same deadline, is listed the same way, carries
a trace context and is logged and counted once.
"""

from __future__ import annotations

import logging
from typing import Any

from async_api import logs, metrics
from async_api.contract import DurableFunction
from async_api.engine import (
    CANCELED,
    PENDING,
    REJECTED,
    RESOLVED,
    TIMEDOUT,
    TRACEPARENT_TAG,
    Engine,
    Promise,
)
from async_api.settings import Settings

_log = logging.getLogger(__name__)

# A job's state, in the engine's words: /wait and /jobs say these and no others.
STATES = (PENDING, RESOLVED, REJECTED, CANCELED, TIMEDOUT)
# /jobs only: a pending job whose workflow waits for its approval webhook.
WAITING_FOR_APPROVAL = "waiting_for_approval"
# Older words for the same states, still accepted by GET /jobs?state= (not documented).
STATE_ALIASES = {"running": PENDING, "done": RESOLVED, "failed": REJECTED,
                 "cancelled": CANCELED, "timed_out": TIMEDOUT}
# A job started by approve-and-ship carries the id of the approval promise it awaits.
APPROVAL_TAG = "async-api:approval"


def start(
    engine: Engine,
    settings: Settings,
    function: DurableFunction,
    job_id: str,
    args: list[Any],
    tags: dict[str, str] | None = None,
) -> Promise:
    """Starts `function` on its worker group as the job `job_id`, ending `timedout` after
    JOB_TIMEOUT_SECONDS; the same id and arguments again return the existing job, no new run.

    The job keeps the trace context of the request (or job) that started it, a new one if
    there is none. The server answers a repeated start with the stored job, tags included, so
    the traceparent it carries tells whether this call created it (each call's is unique).
    """
    _, traceparent = logs.new_span(logs.current_traceparent())
    promise = engine.invoke(job_id, function.name, args, group=function.group,
                            timeout_seconds=settings.job_timeout_seconds,
                            tags={**(tags or {}), TRACEPARENT_TAG: traceparent})
    stored = promise.tags.get(TRACEPARENT_TAG)
    created = stored == traceparent
    if created:
        metrics.JOBS_STARTED.labels(function.name).inc()
    _log.info("job started" if created else "job already started", extra=logs.fields(
        job_id=job_id, function=function.name, state=promise.state,
        trace_id=logs.trace_id_of(stored)))
    return promise
