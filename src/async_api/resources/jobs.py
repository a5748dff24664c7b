"""The job API: submit an order job, read any job's state and steps, list jobs, cancel a
running job, retry a failed one."""

from datetime import datetime
from typing import Any

from flask_smorest import Blueprint

from async_api import contract, ids, jobs, listing, lro
from async_api.engine import INVOKE_TAG, PROGRESS_STEP, SLEEP_TAG, STEP_TAG, Promise
from async_api.errors import ApiError
from async_api.resources import (
    accepted,
    cancel_pending,
    engine,
    find_job,
    job_to_change,
    job_view,
    jobs_page,
    owned,
    settings,
    start_job,
)
from async_api.schemas import ErrorResponseSchema, started_job_links
from async_api.schemas.jobs import (
    JobListQuerySchema,
    JobListSchema,
    JobSchema,
    JobStepsSchema,
    OrderJobSchema,
)

blp = Blueprint("jobs", __name__, description="Durable jobs: submit, poll, list, cancel, retry.")


@blp.route("/jobs", methods=["POST"])
@blp.arguments(OrderJobSchema())
@blp.response(202, JobSchema)
@blp.doc(**started_job_links())
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
        states=frozenset(query.get("state") or jobs.STATES), function=query.get("function"),
        created_after=_ms(query.get("created_after")),
        created_before=_ms(query.get("created_before")))
    page = jobs_page(wanted, query["limit"], query.get("cursor"))
    return {"jobs": [job_view(p, waiting_for=page.waiting_for.get(p.id)) for p in page.jobs],
            "next_cursor": page.next_cursor}


def _ms(moment: datetime | None) -> int | None:
    """A query's datetime (aware: the schema makes it so) in the engine's ms since the epoch."""
    return None if moment is None else int(moment.timestamp() * 1000)


@blp.route("/jobs/<id:job_id>")
@blp.response(200, JobSchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown job.")
def get_job(job_id: str) -> dict:
    """The job's state now; never waits for the job."""
    return job_view(find_job(ids.checked(job_id, settings())), detailed=True)


@blp.route("/jobs/<id:job_id>/cancel", methods=["POST"])
@blp.response(200, JobSchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown job.")
@blp.alt_response(403, schema=ErrorResponseSchema, description="Nobody's job; not an admin.")
@blp.alt_response(409, schema=ErrorResponseSchema, description="The job already finished.")
def cancel_job(job_id: str) -> dict:
    """Cancel a pending job; its worker may finish the step it is in, but not flip the job."""
    return job_view(cancel_pending(ids.checked(job_id, settings())))


@blp.route("/jobs/<id:job_id>/retry", methods=["POST"])
@blp.response(202, JobSchema)
@blp.doc(**started_job_links())
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown job.")
@blp.alt_response(403, schema=ErrorResponseSchema, description="Nobody's job; not an admin.")
@blp.alt_response(409, schema=ErrorResponseSchema, description="The job runs or succeeded.")
def retry_job(job_id: str) -> tuple:
    """Start the next attempt of a failed, canceled or timed-out job, as a job of its own
    (`retry_of` links it back, the retried job's `retried_by` forward); retrying the same job
    again returns the same attempt."""
    job = job_to_change(ids.checked(job_id, settings()))
    if job.state not in jobs.RETRYABLE or job.function not in contract.BY_NAME:
        raise ApiError(409, "not_retryable",
                       f"The job is {job.state}: only a job that failed, was canceled or timed "
                       "out can be retried.")
    return accepted(owned(jobs.retry(engine(), settings(), job)))


@blp.route("/jobs/<id:job_id>/steps")
@blp.response(200, JobStepsSchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown job.")
def job_steps(job_id: str) -> dict:
    """The workflow's durable steps, child calls, sleeps and progress reports, oldest first,
    and the approval it awaits if any."""
    job = find_job(ids.checked(job_id, settings()))
    steps = [step_view(p) for p in engine().steps(job.id)]
    if jobs.APPROVAL_TAG in job.tags:
        steps.append(step_view(engine().get(job.tags[jobs.APPROVAL_TAG]), kind="signal"))
    return {"job_id": job.id, "steps": steps}


def step_view(promise: Promise, kind: str | None = None) -> dict[str, Any]:
    """One step of a job's workflow, in the words of GET /jobs/{id}/steps."""
    name = promise.tags.get(STEP_TAG)
    if kind is None:
        kind = ("sleep" if SLEEP_TAG in promise.tags else "call" if INVOKE_TAG in promise.tags
                else "progress" if name == PROGRESS_STEP else "step")
    answer: dict[str, Any] = {
        "id": promise.id,
        "kind": kind,
        "function": promise.function or (name if kind == "step" else None),
        "status": promise.state,
        "created_at": lro.timestamp(promise.created_on),
        "completed_at": lro.timestamp(promise.completed_on),
    }
    if kind == "progress" and isinstance(promise.value, dict):
        answer["progress"] = promise.value
    return answer
