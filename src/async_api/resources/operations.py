"""Google AIP-151 long-running operations: every job is the `Operation` "operations/{job id}".

google-api-core's operations client (REST transport, the HTTP rules of
google/longrunning/operations.proto) gets, lists, cancels and waits on them. A job id holding
":" may come percent-encoded or not: the last ":" of a POST path starts the custom verb.
"""

from flask_smorest import Blueprint

from async_api import ids, listing, lro
from async_api.engine import Promise
from async_api.errors import ApiError
from async_api.jobs import STATES
from async_api.resources import (
    cancel_pending,
    find_job,
    held,
    job_progress,
    jobs_page,
    settings,
)
from async_api.schemas import ErrorResponseSchema
from async_api.schemas.operations import (
    EmptySchema,
    ListOperationsQuerySchema,
    ListOperationsSchema,
    OperationSchema,
    WaitOperationSchema,
)

blp = Blueprint("operations", __name__, url_prefix="/v1",
                description="Jobs as Google AIP-151 long-running operations.")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


@blp.route("/operations")
@blp.arguments(ListOperationsQuerySchema(), location="query", error_status_code=400)
@blp.response(200, ListOperationsSchema)
@blp.alt_response(400, schema=ErrorResponseSchema, description="A filter or pageToken not ours.")
def list_operations(query: dict) -> dict:
    """Operations newest first; pass `nextPageToken` back as `pageToken`."""
    try:
        states = lro.parse_filter(query["filter"], STATES)
    except lro.FilterError as exc:
        raise ApiError(400, "invalid_filter", str(exc)) from exc
    size = min(query["pageSize"] or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    found, cursor = jobs_page(listing.JobFilter(states), size, query["pageToken"] or None)
    return {"operations": [lro.operation(p, job_progress(p, detailed=False)) for p in found],
            "nextPageToken": cursor or ""}


@blp.route("/operations/<id:job_id>")
@blp.response(200, OperationSchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown operation.")
def get_operation(job_id: str) -> dict:
    """The operation now; never waits."""
    return _operation(find_job(ids.checked(job_id, settings())))


@blp.route("/operations/<id:job_id>:cancel", methods=["POST"])
@blp.response(200, EmptySchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown operation.")
@blp.alt_response(409, schema=ErrorResponseSchema, description="The operation is done.")
def cancel_operation(job_id: str) -> dict:
    """Cancel a running operation: it ends done, with error code 1 (CANCELLED)."""
    cancel_pending(ids.checked(job_id, settings()))
    return {}


@blp.route("/operations/<id:job_id>:wait", methods=["POST"])
@blp.arguments(WaitOperationSchema(), required=False, error_status_code=400)
@blp.response(200, OperationSchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown operation.")
def wait_operation(body: dict, job_id: str) -> dict:
    """The operation once done, or as it is after `timeout` (at most LONG_POLL_MAX_SECONDS)."""
    seconds = settings().long_poll_max_seconds
    if body.get("timeout"):
        seconds = lro.duration_seconds(body["timeout"])
        if seconds is None:
            raise ApiError(400, "invalid_timeout", 'timeout is a Duration such as "5s".')
    return _operation(held(find_job(ids.checked(job_id, settings())), seconds))


def _operation(job: Promise) -> dict:
    return lro.operation(job, job_progress(job, detailed=True))
