"""A short synchronous request: the gateway waits a little for the worker's answer.

Too slow and it answers 202 with the job's status monitor (Operation-Location), as every route
that starts work does: a 504 would read as a failure to clients and proxies, and be retried. The
work goes on, and the same request later returns the stored result at once. A quote that
failed, was canceled or timed out is not the answer for good (a pricing step may fail for a
while): the same request runs its next attempt.
"""

from flask import Response, jsonify
from flask_smorest import Blueprint

from async_api import contract, jobs
from async_api.engine import PENDING, RESOLVED
from async_api.errors import ApiError
from async_api.resources import accepted, engine, settings, settled_within, start_job
from async_api.schemas import ErrorResponseSchema
from async_api.schemas.jobs import JobSchema
from async_api.schemas.quotes import QuoteRequestSchema, QuoteSchema

blp = Blueprint("quotes", __name__, description="Price quotes, answered synchronously.")


@blp.route("/price-quote", methods=["POST"])
@blp.arguments(QuoteRequestSchema())
@blp.response(200, QuoteSchema)
@blp.alt_response(202, schema=JobSchema,
                  description="Not ready in time: the job, with Operation-Location to poll.")
@blp.alt_response(422, schema=ErrorResponseSchema, description="Invalid request, or no quote.")
def price_quote(request: dict) -> dict | Response:
    """Run `compute_quote` on worker group `pricing` and wait up to QUOTE_TIMEOUT_SECONDS."""
    # Shared by every principal: the same request finds the same stored price.
    promise = start_job(contract.COMPUTE_QUOTE,
                        contract.quote_job_id(request["sku"], request["qty"]),
                        [request["sku"], request["qty"]], shared=True)
    while promise.state in jobs.RETRYABLE:  # a quote failed, canceled or timed out is no price
        promise = jobs.retry(engine(), settings(), promise)  # its next attempt, found or new
    promise = settled_within(promise, settings().quote_timeout_seconds)
    if promise.state == RESOLVED and isinstance(promise.value, dict):
        return {"quote_id": promise.id, **promise.value}
    if promise.state != PENDING:  # failed, or an answer that is not a quote
        raise ApiError(422, "quote_failed", "No quote could be computed.", promise.value)
    answer, status, headers = accepted(promise)
    response = jsonify(answer)  # a Response: not dumped through the 200 answer's QuoteSchema
    response.status_code = status
    response.headers.update(headers)
    return response
