"""POST /begin starts the durable function `foo`; GET /wait reads its state without blocking."""

from flask import Response, current_app, jsonify, url_for
from flask_smorest import Blueprint

from async_api import body, contract, ids, settled_waits
from async_api.engine import PENDING, RESOLVED, Promise
from async_api.jobs import OWNER_TAG
from async_api.newest import Newest
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
from async_api.settled_waits import SettledWait

blp = Blueprint("polling", __name__, description="Start a durable job, then poll for its result.")

DEFAULT_BODY = {"foo": "bar"}
# A settled job's /wait answer never changes: each process renders it once, then sends the same
# bytes, and settled_waits.py sends them before Flask sees the poll. One memory per app, as ids are.
SETTLED_ANSWERS = "async_api.settled_wait_answers"  # app.extensions key
_WAIT_ANSWER = WaitResponseSchema()

blp.record_once(lambda state: state.app.extensions.setdefault(
    SETTLED_ANSWERS, Newest(settled_waits.KEPT)))


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


@blp.route(settled_waits.WAIT_ROUTE)
@blp.arguments(WaitQuerySchema(), location="query", error_status_code=400)
@blp.response(200, WaitResponseSchema)
@blp.alt_response(404, schema=ErrorResponseSchema, description="Unknown id.")
@blp.alt_response(503, schema=ErrorResponseSchema, description="The engine is unreachable.")
def wait(query: dict) -> tuple | Response:
    """The job's state: pending (with Retry-After), resolved, or rejected with the error.

    Never blocks, unless `timeout=S` asks for a long-poll: then the answer comes as soon as the
    job settles, or after S seconds (at most LONG_POLL_MAX_SECONDS) with the pending body.
    """
    promise = held(find_job(ids.checked(query["id"], settings())), query.get("timeout"))
    if promise.state == PENDING:
        answer = {"status": PENDING, "promise_id": promise.id, "message": "Processing in progress"}
        return answer, retry_after()
    return current_app.response_class(settled_answer(promise), mimetype=current_app.json.mimetype)


def settled_answer(promise: Promise) -> bytes:
    """The body of /wait for a settled job, as the schema and jsonify render it."""
    answers: Newest[str, SettledWait] = current_app.extensions[SETTLED_ANSWERS]
    remembered = answers.get(promise.id)
    if remembered is None:
        outcome = "result" if promise.state == RESOLVED else "error"
        answer = {"status": promise.state, "promise_id": promise.id, outcome: promise.value}
        remembered = SettledWait(promise.tags.get(OWNER_TAG),
                                 jsonify(_WAIT_ANSWER.dump(answer)).get_data())
        answers.remember(promise.id, remembered)
    return remembered.body
