"""Jobs as the /jobs API shows them: one view of a durable promise, shared by every resource
that starts work (jobs, orders, quotes, the RPC flows)."""

from __future__ import annotations

from typing import Any

from flask import url_for

from async_api.engine import (
    CANCELED,
    JOB_TAG,
    PENDING,
    REJECTED,
    RESOLVED,
    TIMEDOUT,
    Engine,
    Promise,
)
from async_api.errors import ApiError
from async_api.settings import Settings

# The job API's words for the engine's promise states.
STATUS = {
    PENDING: "running",
    RESOLVED: "done",
    REJECTED: "failed",
    CANCELED: "cancelled",
    TIMEDOUT: "timed_out",
}
ENGINE_STATE = {status: state for state, status in STATUS.items()}
WAITING_FOR_APPROVAL = "waiting_for_approval"
# A job started by approve-and-ship carries the id of the approval promise it awaits.
APPROVAL_TAG = "async-api:approval"


def find(engine: Engine, job_id: str) -> Promise:
    """The job with this id; workflow steps and approval promises are not jobs (404)."""
    promise = engine.get(job_id)
    if JOB_TAG not in promise.tags:
        raise ApiError(404, "not_found", "No job has this id.")
    return promise


def links(job_id: str) -> dict[str, str]:
    return {
        "self": url_for("jobs.get_job", job_id=job_id),
        "cancel": url_for("jobs.cancel_job", job_id=job_id),
    }


def view(promise: Promise, engine: Engine | None = None) -> dict[str, Any]:
    """The JSON for one job. With `engine`, a running job that awaits an approval says so."""
    answer: dict[str, Any] = {
        "job_id": promise.id,
        "status": STATUS.get(promise.state, promise.state),
        "links": links(promise.id),
    }
    if promise.state == RESOLVED:
        answer["result"] = promise.value
    elif promise.state != PENDING:
        answer["reason"] = promise.value
    elif engine is not None and APPROVAL_TAG in promise.tags:
        approval_id = promise.tags[APPROVAL_TAG]
        if engine.get(approval_id).pending:
            answer["status"] = WAITING_FOR_APPROVAL
            answer["waiting_for"] = approval_id
    return answer


def start(
    engine: Engine,
    settings: Settings,
    job_id: str,
    func: str,
    args: list[Any],
    group: str,
    tags: dict[str, str] | None = None,
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Starts `func` durably (or reconnects to the run with this id) and answers 202."""
    promise = engine.invoke(
        job_id, func, args, group=group, timeout_seconds=settings.job_timeout_seconds, tags=tags
    )
    answer = view(promise)
    return answer, 202, {"Location": answer["links"]["self"]}
