"""Blueprints, one module per resource. What they share lives here: the app's engine and
settings, and how a job is started, found and shown over HTTP."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, NamedTuple

from flask import current_app, g, request, url_for

from async_api import admission, auth, listing, logs, lro, plain
from async_api.contract import DurableFunction
from async_api.engine import (
    CANCELED,
    JOB_TAG,
    PENDING,
    RESOLVED,
    Engine,
    EngineRejected,
    Progress,
    Promise,
    PromiseAlreadySettled,
    PromiseNotFound,
)
from async_api.errors import ApiError
from async_api.jobs import (
    APPROVAL_TAG,
    FIRST_ATTEMPT_TAG,
    OWNER_TAG,
    RETRY_OF_TAG,
    WAITING_FOR_APPROVAL,
    attempt,
    next_attempt_id,
    start,
)
from async_api.settings import Settings

# (No `from async_api import jobs` here: it would shadow the blueprint module resources/jobs.py.)


def engine() -> Engine:
    return current_app.extensions["async_api.engine"]


def settings() -> Settings:
    return current_app.extensions["async_api.settings"]


def principal() -> str | None:
    """Who sent this request: the name its token has (auth.py), None when auth is off."""
    return g.get("principal")


def owner_filter() -> str | None:
    """The principal whose jobs alone this request may see; None: every job (auth off, or an
    admin principal)."""
    return auth.owner_filter(principal(), settings().admin_principals)


def visible(job: Promise) -> bool:
    """Whether this request may see `job`: its own, or a job nobody owns."""
    return auth.may_see(principal(), job.tags.get(OWNER_TAG), settings().admin_principals)


def start_job(
    function: DurableFunction, job_id: str, args: list[Any], tags: dict[str, str] | None = None,
    shared: bool = False,
) -> Promise:
    """`async_api.jobs.start` with this app's engine and settings; the job belongs to the
    request's principal unless `shared`. An id another principal's job has is a 409."""
    logs.add(job_id=job_id)  # the request's log line is about this job
    tags = dict(tags or {})
    if principal() is not None and not shared:
        tags[OWNER_TAG] = principal()
    return owned(plain.handed_over(request.environ, job_id)
                 or start(engine(), settings(), function, job_id, args, tags))


def owned(job: Promise) -> Promise:
    """`job` if this request may see it; else the 409 a clash of ids is (not a 404: the id
    is taken, and the caller must choose another)."""
    if not visible(job):
        raise ApiError(409, "conflict", "This id is already used by another job.")
    return job


def absolute_url(endpoint: str, **values: Any) -> str:
    """A URL with scheme and host, from the request (behind TRUSTED_PROXY_HOPS proxies, from
    their X-Forwarded-* headers): long-running-operation pollers need absolute URLs."""
    return url_for(endpoint, _external=True, **values)


def started_headers(job_id: str, location: str | None = None) -> dict[str, str]:
    """Headers of a 202 that started (or reconnected to) a job: Operation-Location, the job's
    status monitor (Microsoft REST API guidelines), and Location, where its result will be
    (default: the job)."""
    return {
        "Operation-Location": absolute_url("status_monitor.get_status", job_id=job_id),
        "Location": location or absolute_url("jobs.get_job", job_id=job_id),
    }


def accepted(promise: Promise) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The 202 answer of a route that started (or reconnected to) a job: without progress,
    which a job just started has not reported (one engine call saved on every start)."""
    return job_view(promise, with_progress=False), 202, started_headers(promise.id)


def held(promise: Promise, seconds: float | None) -> Promise:
    """A long-poll: the job once settled, or as it is after `seconds` (capped by
    LONG_POLL_MAX_SECONDS); None or 0 reads it once, as a normal poll."""
    if not seconds or not promise.pending:
        return promise
    return settled_within(promise, min(seconds, settings().long_poll_max_seconds))


def settled_within(promise: Promise, seconds: float) -> Promise:
    """`promise` once settled, or as it is after `seconds`. While it waits, the request no
    longer counts against ADMISSION_MAX_REQUESTS: it holds, costing no CPU (admission.py)."""
    admission.release(request.environ)
    return engine().settled_within(promise, seconds)


def retry_after() -> dict[str, str]:
    """Retry-After for an answer about a job that is still running."""
    return {"Retry-After": str(settings().retry_after_seconds)}


def find_job(job_id: str) -> Promise:
    """The job with this id; workflow steps, approval promises and other principals' jobs
    are not found (404)."""
    logs.add(job_id=job_id)  # the request's log line is about this job
    promise = plain.handed_over(request.environ, job_id) or engine().get(job_id)
    if JOB_TAG not in promise.tags or not visible(promise):
        raise ApiError(404, "not_found", "No job has this id.")
    return promise


def job_to_change(job_id: str) -> Promise:
    """`find_job` for a cancel or a retry: a job this request may see but not change (one
    nobody owns, and the principal is no admin) is a 403."""
    job = find_job(job_id)
    if not may_change(job):
        raise ApiError(403, "forbidden",
                       "Only an admin principal may cancel or retry a job nobody owns (a "
                       "shared quote, or a job started while auth was off).")
    return job


def may_change(job: Promise) -> bool:
    """Whether this request's principal may cancel or retry `job` (auth.may_change)."""
    return auth.may_change(principal(), job.tags.get(OWNER_TAG), settings().admin_principals)


def job_links(job: Promise) -> dict[str, str]:
    """What the caller may do with the job: no cancel nor retry where it would get a 403, so
    the dashboard offers no button that can only fail."""
    links = {"self": url_for("jobs.get_job", job_id=job.id)}
    if may_change(job):
        links["cancel"] = url_for("jobs.cancel_job", job_id=job.id)
        links["retry"] = url_for("jobs.retry_job", job_id=job.id)
    links["steps"] = url_for("jobs.job_steps", job_id=job.id)
    links["status_monitor"] = url_for("status_monitor.get_status", job_id=job.id)
    return links


def job_progress(promise: Promise, detailed: bool) -> Progress | None:
    """The job's last progress report: looked up for a running job, and for a finished one
    only in a detailed view (one engine call each)."""
    return engine().progress(promise.id) if detailed or promise.pending else None


def job_view(
    promise: Promise, detailed: bool = False, with_progress: bool = True,
    waiting_for: str | None = None,
) -> dict[str, Any]:
    """The JSON for one job. `detailed` (the view of one job, not a list) adds what costs an
    engine call more: whether a pending job awaits its approval, its arguments, the progress
    of a finished job, and the attempt that retried it. `waiting_for`: the approval a listing
    found the job awaits (it asked the engine already)."""
    progress = job_progress(promise, detailed) if with_progress else None
    answer: dict[str, Any] = {
        "job_id": promise.id,
        "status": promise.state,
        "function": promise.function,
        "group": promise.group,
        "created_at": lro.timestamp(promise.created_on),
        "updated_at": lro.timestamp(lro.last_updated(promise, progress)),
        "completed_at": lro.timestamp(promise.completed_on),
        "attempt": attempt(promise),
        "links": job_links(promise),
    }
    if RETRY_OF_TAG in promise.tags:
        answer["retry_of"] = promise.tags[RETRY_OF_TAG]
        answer["first_attempt"] = promise.tags[FIRST_ATTEMPT_TAG]
    if progress is not None:
        answer["progress"] = {"fraction": progress.fraction, "message": progress.message,
                              "reported_at": lro.timestamp(progress.reported_on)}
    if detailed:
        answer["args"] = promise.args
        waiting_for = awaited_approval(promise)
    if promise.state == RESOLVED:
        answer["result"] = promise.value
    elif promise.state != PENDING:
        answer["reason"] = promise.value
        if detailed:
            retried_by = _retry_of(promise)
            answer["retried_by"] = retried_by and retried_by.id
    elif waiting_for:
        answer["status"] = WAITING_FOR_APPROVAL
        answer["waiting_for"] = waiting_for
    return answer


def awaited_approval(job: Promise) -> str | None:
    """The id of the approval `job` waits for: that of a pending job of approve-and-ship while
    the approval is pending (one engine read), else None."""
    approval_id = job.tags.get(APPROVAL_TAG)
    if job.state != PENDING or approval_id is None or not engine().get(approval_id).pending:
        return None
    return approval_id


def _retry_of(job: Promise) -> Promise | None:
    """The attempt that retried `job`, if one was started."""
    try:
        return engine().get(next_attempt_id(job))
    except PromiseNotFound:
        return None


def newest_attempt(job: Promise) -> Promise:
    """The last attempt of `job`: itself, or the retry of its retry... The request's log line
    is about that one."""
    while (retry := _retry_of(job)) is not None:
        job = retry
    logs.add(job_id=job.id)
    return job


class JobsPage(NamedTuple):
    """A page of jobs, newest first, the next page's cursor (None on the last), and the
    approval each listed job awaits, for those the listing asked about (`waiting_for`)."""

    jobs: list[Promise]
    next_cursor: str | None
    waiting_for: dict[str, str]


def jobs_page(wanted: listing.JobFilter, limit: int, cursor: str | None) -> JobsPage:
    """One full page of the jobs `wanted`, newest first, unless it is the last, and the next
    page's cursor. See async_api.listing."""
    try:
        engine_cursor, after = listing.decode_cursor(cursor, wanted) if cursor else (None, None)
    except listing.OtherFilters as exc:
        raise ApiError(400, "invalid_cursor",
                       "This cursor comes from a listing with other filters: send it with "
                       "the filters it came with, or start again without it.") from exc
    except listing.CursorError as exc:
        raise ApiError(400, "invalid_cursor", "Pass back a cursor as it was given.") from exc
    found: list[Promise] = []
    waiting_for: dict[str, str] = {}
    owner = owner_filter()
    for _ in range(listing.MAX_ENGINE_PAGES):
        try:
            page, next_engine_cursor = engine().search_jobs(
                listing.engine_state(wanted.states), listing.engine_page_size(wanted, limit),
                engine_cursor,
                tags={OWNER_TAG: owner} if owner else None)
        except EngineRejected as exc:  # the engine cursor inside ours was tampered with
            raise ApiError(400, "invalid_cursor", "Pass back a cursor as it was given.") from exc
        rest = listing.after_last(page, after)
        older = next((n for n, p in enumerate(rest) if wanted.past(p)), None)
        room = limit - len(found)
        # One more than there is room for: whether this engine page holds more.
        matches = list(islice(_matching(wanted, rest[:older], waiting_for), room + 1))
        found += matches[:room]
        if len(matches) > room:  # this engine page holds more: go on after the last shown
            return JobsPage(found, listing.encode_cursor(engine_cursor, found[-1].id, wanted),
                            waiting_for)
        if older is not None or next_engine_cursor is None:
            return JobsPage(found, None, waiting_for)
        engine_cursor, after = next_engine_cursor, None
        if len(found) == limit:
            break
    return JobsPage(found, listing.encode_cursor(engine_cursor, None, wanted), waiting_for)


def _matching(
    wanted: listing.JobFilter, jobs: Iterable[Promise], waiting_for: dict[str, str]
) -> Iterator[Promise]:
    """The jobs of `jobs` that `wanted` shows, noting in `waiting_for` the approval each
    awaits where the filter asks. Lazy: the engine is asked about the orders up to the page's
    end (a page shows at most 100 jobs), not about every pending order of the engine pages
    read."""
    for job in jobs:
        if wanted.asks_approval_of(job) and (approval_id := awaited_approval(job)):
            waiting_for[job.id] = approval_id
        if wanted.matches(job, awaits_approval=job.id in waiting_for):
            yield job


def cancel_pending(job_id: str) -> Promise:
    """Cancels a pending job and returns it, as it does a canceled one (a cancel sent again,
    its answer lost); 409 once it has finished otherwise."""
    promise = job_to_change(job_id)
    try:
        if promise.state == PENDING:
            return engine().cancel(job_id, {"message": "canceled by request"})
    except PromiseAlreadySettled:
        promise = engine().get(job_id)
    if promise.state == CANCELED:
        return promise
    raise ApiError(409, "already_settled",
                   f"The job is already {promise.state}; it cannot be canceled.")
