"""Blueprints, one module per resource. What they share lives here: the app's engine and
settings, and how a job is started, found and shown over HTTP."""

from __future__ import annotations

from typing import Any

from flask import current_app, url_for

from async_api.contract import DurableFunction
from async_api.engine import JOB_TAG, PENDING, RESOLVED, Engine, Promise
from async_api.errors import ApiError
from async_api.jobs import APPROVAL_TAG, WAITING_FOR_APPROVAL, start
from async_api.settings import Settings

# (No `from async_api import jobs` here: it would shadow the blueprint module resources/jobs.py.)


def engine() -> Engine:
    return current_app.extensions["async_api.engine"]


def settings() -> Settings:
    return current_app.extensions["async_api.settings"]


def start_job(
    function: DurableFunction, job_id: str, args: list[Any], tags: dict[str, str] | None = None
) -> Promise:
    """`async_api.jobs.start` with this app's engine and settings."""
    return start(engine(), settings(), function, job_id, args, tags)


def accepted(promise: Promise) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The 202 answer of a route that started (or reconnected to) a job."""
    answer = job_view(promise)
    return answer, 202, {"Location": answer["links"]["self"]}


def find_job(job_id: str) -> Promise:
    """The job with this id; workflow steps and approval promises are not jobs (404)."""
    promise = engine().get(job_id)
    if JOB_TAG not in promise.tags:
        raise ApiError(404, "not_found", "No job has this id.")
    return promise


def job_links(job_id: str) -> dict[str, str]:
    return {
        "self": url_for("jobs.get_job", job_id=job_id),
        "cancel": url_for("jobs.cancel_job", job_id=job_id),
    }


def job_view(promise: Promise, show_approval: bool = False) -> dict[str, Any]:
    """The JSON for one job. With `show_approval`, a pending job that awaits its approval says
    so (one more engine call)."""
    answer: dict[str, Any] = {
        "job_id": promise.id,
        "status": promise.state,
        "links": job_links(promise.id),
    }
    if promise.state == RESOLVED:
        answer["result"] = promise.value
    elif promise.state != PENDING:
        answer["reason"] = promise.value
    elif show_approval and APPROVAL_TAG in promise.tags:
        approval_id = promise.tags[APPROVAL_TAG]
        if engine().get(approval_id).pending:
            answer["status"] = WAITING_FOR_APPROVAL
            answer["waiting_for"] = approval_id
    return answer
