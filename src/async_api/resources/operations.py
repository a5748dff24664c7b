"""Google AIP-151 long-running operations: every job is the `Operation` "operations/{job id}".

google-api-core's operations client (REST transport, the HTTP rules of
google/longrunning/operations.proto) gets, lists, cancels and waits on them. A job id holding
":" may come percent-encoded or not: the last ":" of a POST path starts the custom verb.
"""

from typing import Any

from flask import Response, request
from flask_smorest import Blueprint
from flask_smorest.utils import prepare_response

from async_api import ids, listing, lro
from async_api.engine import Promise
from async_api.errors import GOOGLE_API_PREFIX, ApiError, as_google_status
from async_api.jobs import STATES
from async_api.resources import (
    cancel_pending,
    find_job,
    held,
    job_progress,
    jobs_page,
    settings,
)
from async_api.schemas.operations import (
    EmptySchema,
    GoogleErrorResponseSchema,
    ListOperationsQuerySchema,
    ListOperationsSchema,
    OperationSchema,
    WaitOperationSchema,
)


class GoogleApiBlueprint(Blueprint):
    """A blueprint whose errors are google.rpc.Status (`as_google_status`), and documented so:
    also the `default` answer flask-smorest gives every route."""

    @staticmethod
    def _prepare_response_doc(doc: dict, doc_info: dict, *, api: Any, spec: Any,
                              **kwargs: Any) -> dict:
        doc = Blueprint._prepare_response_doc(doc, doc_info, api=api, spec=spec, **kwargs)
        responses = doc.setdefault("responses", {})
        for status, response in [*responses.items(), ("default", None)]:
            if status == "default" or int(status) >= 400:  # the arguments' 400 too
                said = response.get("description") if isinstance(response, dict) else None
                error = {"description": said or "An error, as a google.rpc.Status.",
                         "schema": GoogleErrorResponseSchema}
                prepare_response(error, spec, api.DEFAULT_RESPONSE_CONTENT_TYPE)
                responses[status] = error
        return doc


blp = GoogleApiBlueprint("operations", __name__, url_prefix="/v1",
                         description="Jobs as Google AIP-151 long-running operations.")


@blp.after_app_request
def _google_errors(response: Response) -> Response:
    """Every error under /v1/, whoever answered it: a route, the auth hook, routing's 405."""
    return (as_google_status(response) if request.path.startswith(GOOGLE_API_PREFIX)
            else response)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


@blp.route("/operations")
@blp.arguments(ListOperationsQuerySchema(), location="query", error_status_code=400)
@blp.response(200, ListOperationsSchema)
@blp.alt_response(400, schema=GoogleErrorResponseSchema,
                  description="A bad filter or pageSize, a pageToken not ours.")
def list_operations(query: dict) -> dict:
    """Operations newest first; pass `nextPageToken` back as `pageToken`."""
    try:
        states = lro.parse_filter(query["filter"], STATES)
    except lro.FilterError as exc:
        raise ApiError(400, "invalid_filter", str(exc)) from exc
    size = min(query["pageSize"] or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    page = jobs_page(listing.JobFilter(states), size, query["pageToken"] or None)
    return {"operations": [lro.operation(p, job_progress(p, detailed=False)) for p in page.jobs],
            "nextPageToken": page.next_cursor or ""}


@blp.route("/operations/<id:job_id>")
@blp.response(200, OperationSchema)
@blp.alt_response(404, schema=GoogleErrorResponseSchema, description="Unknown operation.")
def get_operation(job_id: str) -> dict:
    """The operation now; never waits."""
    return _operation(find_job(ids.checked(job_id, settings())))


@blp.route("/operations/<id:job_id>:cancel", methods=["POST"])
@blp.response(200, EmptySchema)
@blp.alt_response(404, schema=GoogleErrorResponseSchema, description="Unknown operation.")
@blp.alt_response(409, schema=GoogleErrorResponseSchema, description="The operation is done.")
def cancel_operation(job_id: str) -> dict:
    """Cancel a running operation: it ends done, with error code 1 (CANCELLED)."""
    cancel_pending(ids.checked(job_id, settings()))
    return {}


@blp.route("/operations/<id:job_id>:wait", methods=["POST"])
@blp.arguments(WaitOperationSchema(), required=False, error_status_code=400)
@blp.response(200, OperationSchema)
@blp.alt_response(404, schema=GoogleErrorResponseSchema, description="Unknown operation.")
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
