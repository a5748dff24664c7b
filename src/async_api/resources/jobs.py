"""The job API: submit an order job, read any job's state, list jobs, cancel a running job."""

from datetime import datetime

from flask_smorest import Blueprint

from async_api import contract, ids, listing
from async_api.jobs import STATES
from async_api.resources import (
    accepted,
    cancel_pending,
    find_job,
    job_view,
    jobs_page,
    settings,
    start_job,
)
from async_api.schemas import ErrorResponseSchema
from async_api.schemas.jobs import JobListQuerySchema, JobListSchema, JobSchema, OrderJobSchema

blp = Blueprint("jobs", __name__, description="Durable jobs: submit, poll, list, cancel.")


@blp.route("/jobs", methods=["POST"])
@blp.arguments(OrderJobSchema())
@blp.response(202, JobSchema)
@blp.alt_response(409, schema=ErrorResponseSchema, description="Same order, other items.")
def submit_job(order: dict) -> tuple:
    """Process an order; the id is `order:{order_id}`, so a retried submit reconnects."""
    return accepted(start_job(contract.PROCESS_ORDER, contract.order_job_id(order["order_id"]),
                              [order["order_id"], order["items"]]))


@blp.route("/jobs")
@blp.arguments(JobListQuerySchema(), location="query")
@blp.response(200, JobListSchema)
@blp.alt_response(400, schema=ErrorResponseSchema, description="A cursor not from this server.")
def list_jobs(query: dict) -> dict:
    """Jobs newest first, one page at a time; pass `next_cursor` back as `cursor`."""
    wanted = listing.JobFilter(
        states=frozenset(query.get("state") or STATES), function=query.get("function"),
        created_after=_ms(query.get("created_after")),
        created_before=_ms(query.get("created_before")))
    found, cursor = jobs_page(wanted, query["limit"], query.get("cursor"))
    return {"jobs": [job_view(p) for p in found], "next_cursor": cursor}


def _ms(moment: datetime | None) -> int | None:
    """A query's datetime (aware: the schema makes it so) in the engine's ms since the epoch."""
    return None if moment is None else int(moment.timestamp() * 1000)


@blp.route("/jobs/<id:job_id>")
@blp.response(200, JobSchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown job.")
def get_job(job_id: str) -> dict:
    """The job's state now; never waits for the job."""
    return job_view(find_job(ids.checked(job_id, settings())), show_approval=True)


@blp.route("/jobs/<id:job_id>/cancel", methods=["POST"])
@blp.response(200, JobSchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown job.")
@blp.alt_response(409, schema=ErrorResponseSchema, description="The job already finished.")
def cancel_job(job_id: str) -> dict:
    """Cancel a pending job; its worker may finish the step it is in, but not flip the job."""
    return job_view(cancel_pending(ids.checked(job_id, settings())))
