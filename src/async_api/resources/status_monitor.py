"""The status monitor of every job (Microsoft REST API guidelines, long-running operations).

Routes that start work answer 202 with `Operation-Location` pointing here, so a stock poller
(azure-core's LROPoller) follows the job to its result, and raises when it fails.
"""

from flask import request
from flask_smorest import Blueprint

from async_api import ids, lro
from async_api.resources import find_job, held, job_progress, retry_after, settings
from async_api.schemas import ErrorResponseSchema
from async_api.schemas.status_monitor import StatusMonitorSchema

blp = Blueprint("status_monitor", __name__,
                description="Each job's status monitor, for long-running-operation pollers.")


@blp.route("/jobs/<id:job_id>/operation")
@blp.response(200, StatusMonitorSchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown job.")
@blp.doc(parameters=[{
    "in": "header", "name": "Prefer", "required": False, "schema": {"type": "string"},
    "description": "RFC 7240 `wait=S`: hold the request until the job settles or S seconds "
                   "pass (at most LONG_POLL_MAX_SECONDS).",
}])
def get_status(job_id: str) -> tuple:
    """`Running` with Retry-After, then `Succeeded` with `result`, or `Failed`/`Canceled` with
    `error`; `Prefer: wait=S` makes it a long-poll."""
    wait = lro.preferred_wait(request.headers.get("Prefer"))
    promise = held(find_job(ids.checked(job_id, settings())), wait)
    headers = retry_after() if promise.pending else {}
    if wait is not None:
        headers["Preference-Applied"] = f"wait={min(wait, settings().long_poll_max_seconds):g}"
    return lro.status_monitor(promise, job_progress(promise, detailed=True)), headers
