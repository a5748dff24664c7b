"""POST /begin starts the durable function `foo`; GET /wait reads its state without blocking."""

from flask import Flask, Response, current_app, url_for
from flask_smorest import Blueprint

from async_api import body, contract, ids, plain_waits
from async_api.resources import (
    absolute_url,
    find_job,
    held,
    retry_after,
    settings,
    start_job,
    started_headers,
)
from async_api.schemas import ErrorResponseSchema, OptionalIdQuerySchema, started_job_links
from async_api.schemas.polling import (
    BeginResponseSchema,
    WaitQuerySchema,
    WaitResponseSchema,
)

blp = Blueprint("polling", __name__, description="Start a durable job, then poll for its result.")

DEFAULT_BODY = {"foo": "bar"}
# The /wait bodies, shared with plain_waits.py, which answers plain polls before Flask sees them.
WAIT_ANSWERS = "async_api.wait_answers"  # app.extensions key


def _rendered_by(app: Flask) -> plain_waits.Render:
    """What jsonify would send as the body, without a request."""
    return lambda answer: (app.json.dumps(answer, separators=(",", ":")) + "\n").encode()


blp.record_once(lambda state: state.app.extensions.setdefault(
    WAIT_ANSWERS, plain_waits.WaitAnswers(_rendered_by(state.app))))


@blp.route("/begin", methods=["POST"])
@blp.arguments(OptionalIdQuerySchema(), location="query", error_status_code=400)
@blp.response(202, BeginResponseSchema)
@blp.doc(**started_job_links("promise"))
@blp.alt_response(409, schema=ErrorResponseSchema, description="Id reused with another body.")
@blp.alt_response(413, schema=ErrorResponseSchema, description="The body is over MAX_BODY_BYTES.")
@blp.alt_response(415, schema=ErrorResponseSchema, description="The body is not JSON.")
@blp.alt_response(503, schema=ErrorResponseSchema, description="The engine is unreachable.")
@blp.doc(requestBody={
    "required": False,
    "description": 'Any JSON value, passed to `foo` (default `{"foo": "bar"}`).',
    "content": {"application/json": {"schema": {
        "description": 'Objects in it may not have the key "__type" (400 reserved_key).',
        "not": {"type": "object", "required": ["__type"]},
    }}},
})
def begin(query: dict) -> tuple:
    """Start `foo(body)` on worker group `worker`; the same id and body never run twice."""
    job_id = ids.chosen(query["id"], settings()) if "id" in query else ids.mint()
    promise = start_job(contract.FOO, job_id, [body.read_json(default=DEFAULT_BODY)])
    # The body keeps the seed contract's relative `wait`; the headers are absolute.
    wait_url = url_for("polling.wait", id=job_id)
    answer = {"promise": job_id, "status": promise.state, "wait": wait_url}
    return answer, started_headers(job_id, absolute_url("polling.wait", id=job_id))


@blp.route(plain_waits.WAIT_ROUTE)
@blp.arguments(WaitQuerySchema(), location="query", error_status_code=400)
@blp.response(200, WaitResponseSchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown id.")
@blp.alt_response(503, schema=ErrorResponseSchema, description="The engine is unreachable.")
def wait(query: dict) -> Response:
    """The job's state: pending (with Retry-After), resolved, or rejected with the error.

    Never blocks, unless `timeout=S` asks for a long-poll: then the answer comes as soon as the
    job settles, or after S seconds (at most LONG_POLL_MAX_SECONDS) with the pending body.
    """
    promise = held(find_job(ids.checked(query["id"], settings())), query.get("timeout"))
    answers: plain_waits.WaitAnswers = current_app.extensions[WAIT_ANSWERS]
    return current_app.response_class(answers.body(promise), mimetype=current_app.json.mimetype,
                                      headers=retry_after() if promise.pending else None)
