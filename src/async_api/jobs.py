"""Jobs: the one way every job is started, and the words for a job's state.

Flask-free on purpose: the gateway's routes and the workers (a workflow that starts a job of its
own) both start jobs here, so every job gets the same deadline, is listed the same way, carries
a trace context and is logged and counted once.
"""

from __future__ import annotations

import logging
from typing import Any

from async_api import contract, logs, metrics
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
# The principal whose token started the job (when tokens name principals): only they see it.
OWNER_TAG = "async-api:owner"
# A retry (POST /jobs/{id}/retry) carries its attempt number, the job it retries and the
# first attempt's id, after which every attempt is named (contract.retry_job_id).
ATTEMPT_TAG = "async-api:attempt"
RETRY_OF_TAG = "async-api:retry-of"
FIRST_ATTEMPT_TAG = "async-api:first-attempt"
# What a retry keeps of the job it retries.
CARRIED_TAGS = (APPROVAL_TAG, OWNER_TAG)
# The states a job can be retried from.
RETRYABLE = (REJECTED, CANCELED, TIMEDOUT)


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


def carried_tags(job: Promise, names: tuple[str, ...] = (OWNER_TAG,)) -> dict[str, str]:
    """The tags `names` of `job` that it has: what a job started on its behalf keeps (by
    default its owner; a retry keeps CARRIED_TAGS)."""
    return {name: job.tags[name] for name in names if name in job.tags}


def attempt(job: Promise) -> int:
    """1 for a job as started, 2, 3, ... for its retries."""
    return int(job.tags.get(ATTEMPT_TAG, "1"))


def first_attempt(job: Promise) -> str:
    """The id of the job's first attempt, after which every retry is named."""
    return job.tags.get(FIRST_ATTEMPT_TAG, job.id)


def next_attempt_id(job: Promise) -> str:
    """The id of the retry of `job`, whether or not it exists."""
    return contract.retry_job_id(first_attempt(job), attempt(job) + 1)


def retry(engine: Engine, settings: Settings, job: Promise) -> Promise:
    """Starts the next attempt of a finished, unsuccessful job: the same function and arguments
    as a job of its own; a second retry of the same job returns the same attempt."""
    tags = carried_tags(job, CARRIED_TAGS) | {
        ATTEMPT_TAG: str(attempt(job) + 1), RETRY_OF_TAG: job.id,
        FIRST_ATTEMPT_TAG: first_attempt(job)}
    function = contract.BY_NAME[job.function or ""]
    return start(engine, settings, function, next_attempt_id(job), job.args or [], tags)
