"""Human in the loop: an order job that waits, durably, for an approval webhook."""

from flask_smorest import Blueprint

from async_api import contract, ids, jobs
from async_api.resources import accepted, engine, settings, start_job
from async_api.schemas import ErrorResponseSchema, started_job_links
from async_api.schemas.jobs import JobSchema

blp = Blueprint("orders", __name__, description="Orders that wait for a person's approval.")

APPROVAL_OUTLIVES_JOB = 5  # seconds


@blp.route("/orders/<new_id:order_id>/approve-and-ship", methods=["POST"])
@blp.response(202, JobSchema)
@blp.doc(**started_job_links())
@blp.alt_response(409, schema=ErrorResponseSchema, description="The id runs another job.")
def approve_and_ship(order_id: str) -> tuple:
    """Start `approve_then_ship`; it waits for POST /webhooks/approval/<order_id>."""
    order_id = ids.chosen(order_id, settings())
    approval_id = contract.approval_id(order_id)
    # Created here too, so that a webhook arriving before the worker gets to it is not lost.
    # It outlives its job by a moment: unanswered, the job then ends timedout by its own
    # deadline, not rejected by its approval's, a few ms sooner (tests/test_timeouts.py).
    engine().create_signal(approval_id, settings().job_timeout_seconds + APPROVAL_OUTLIVES_JOB)
    return accepted(start_job(contract.APPROVE_THEN_SHIP, contract.order_job_id(order_id),
                              [order_id], tags={jobs.APPROVAL_TAG: approval_id}))
