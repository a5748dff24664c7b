"""A short synchronous request: the gateway waits a little for the worker's answer.

Too slow and it answers 504 with the job to poll; the work goes on, and the same request later
returns the stored result at once.
"""

import time

from flask import Response
from flask_smorest import Blueprint

from async_api import contract
from async_api.engine import PENDING, RESOLVED, Engine, Promise
from async_api.errors import ApiError, error_response
from async_api.resources import engine, job_links, settings, start_job
from async_api.schemas import ErrorResponseSchema
from async_api.schemas.quotes import QuoteRequestSchema, QuoteSchema, QuoteTimeoutSchema

blp = Blueprint("quotes", __name__, description="Price quotes, answered synchronously.")


def settle_within(engine: Engine, promise: Promise, seconds: float) -> Promise:
    """Polls the engine with a growing pause until the promise settles or time is up."""
    deadline, pause = time.monotonic() + seconds, 0.01
    while promise.state == PENDING and time.monotonic() < deadline:
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.2)
        promise = engine.get(promise.id)
    return promise


@blp.route("/price-quote", methods=["POST"])
@blp.arguments(QuoteRequestSchema())
@blp.response(200, QuoteSchema)
@blp.alt_response(504, schema=QuoteTimeoutSchema, description="Not ready in time; poll `wait`.")
@blp.alt_response(422, schema=ErrorResponseSchema, description="Invalid request, or no quote.")
def price_quote(request: dict) -> dict | Response:
    """Run `compute_quote` on worker group `pricing` and wait up to QUOTE_TIMEOUT_SECONDS."""
    config = settings()
    quote_id = contract.quote_job_id(request["sku"], request["qty"])
    promise = start_job(contract.COMPUTE_QUOTE, quote_id, [request["sku"], request["qty"]])
    promise = settle_within(engine(), promise, config.quote_timeout_seconds)
    if promise.state == RESOLVED and isinstance(promise.value, dict):
        return {"quote_id": quote_id, **promise.value}
    if promise.state != PENDING:  # failed, or an answer that is not a quote
        raise ApiError(422, "quote_failed", "No quote could be computed.", promise.value)
    wait_url = job_links(quote_id)["self"]
    return error_response(504, "timeout",
                          f"No quote within {config.quote_timeout_seconds} s; it is still being "
                          "computed: poll `wait`, or send the same request again.",
                          headers={"Location": wait_url},
                          extra={"job_id": quote_id, "wait": wait_url})
