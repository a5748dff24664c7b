"""POST /begin starts the durable function `foo`; GET /wait reads its state without blocking."""

from flask import Flask, Response, current_app, request, url_for
from flask_smorest import Blueprint
from marshmallow import RAISE

from async_api import body, contract, ids, plain
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

# The bodies, shared with plain.py, which answers plain begins and polls before Flask sees them.
ANSWERS = "async_api.answers"  # app.extensions key


def _rendered_by(app: Flask) -> plain.Render:
    """What jsonify would send as the body, without a request."""
    return lambda answer: (app.json.dumps(answer, separators=(",", ":")) + "\n").encode()


blp.record_once(lambda state: state.app.extensions.setdefault(
    ANSWERS, plain.Answers(_rendered_by(state.app))))


def answers() -> plain.Answers:
    return current_app.extensions[ANSWERS]


@blp.route(plain.BEGIN_ROUTE, methods=["POST"])
@blp.arguments(OptionalIdQuerySchema(), location="query", unknown=RAISE,
               error_status_code=400)
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
def begin(query: dict) -> Response:
    """Start `foo(body)` on worker group `worker`; the same id and body never run twice."""
    job_id = ids.chosen(query["id"], settings()) if "id" in query else plain.minted(request.environ)
    promise = start_job(contract.FOO, job_id, [body.read_json(default=plain.DEFAULT_BEGIN_BODY)])
    # The body keeps the seed contract's relative `wait`; the headers are absolute.
    return current_app.response_class(
        answers().begun(promise, url_for("polling.wait", id=job_id)), status=202,
        headers=started_headers(job_id, absolute_url("polling.wait", id=job_id)),
        mimetype=current_app.json.mimetype)


@blp.route(plain.WAIT_ROUTE)
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
    return current_app.response_class(answers().wait(promise), mimetype=current_app.json.mimetype,
                                      headers=retry_after() if promise.pending else None)
