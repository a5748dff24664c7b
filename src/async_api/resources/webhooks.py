"""Webhooks: outside systems settle the promises that workflows wait on.

Authenticated by an HMAC-SHA256 signature of the request's path and raw body when
WEBHOOK_SECRET is set: header `X-Signature-256: sha256=<hex digest>` (`signed_message`).
"""

import hashlib
import hmac

from flask import Flask, request
from flask_smorest import Blueprint

from async_api import contract, ids, jobs
from async_api.engine import TIMEDOUT, PromiseAlreadySettled
from async_api.errors import ApiError
from async_api.resources import engine, find_job, job_view, newest_attempt, settings
from async_api.schemas import ErrorResponseSchema
from async_api.schemas.orders import ApprovalResponseSchema, ApprovalSchema

blp = Blueprint("webhooks", __name__, description="Callbacks from outside systems.")

SIGNATURE_HEADER = "X-Signature-256"
# A 401's challenge (RFC 9110: a 401 names one): an HMAC-SHA256 of the body, in that header.
CHALLENGE = f'Signature header="{SIGNATURE_HEADER}", algorithm="hmac-sha256"'


def signed_message(path: str, body: bytes) -> bytes:
    """What a sender signs: the path it posts to (as routed, `/webhooks/approval/ID`), a
    newline, then the raw body. The path binds a signature to the order it decides: a body
    alone (`{"approved": true}`, the same for every order) signed once approved any order,
    whoever owns it, for as long as the secret lasts."""
    return path.encode() + b"\n" + body


def sign(secret: str, path: str, body: bytes) -> str:
    """The header value a sender computes: sha256=<hex HMAC of `signed_message`>."""
    digest = hmac.new(secret.encode(), signed_message(path, body), hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def check_signature() -> None:
    """An app-wide hook, before the body is even parsed: unsigned requests learn nothing."""
    secret = settings().webhook_secret
    if not secret or request.blueprint != blp.name or request.method == "OPTIONS":
        return  # OPTIONS: what the route allows, as on every route, unsigned
    given = request.headers.get(SIGNATURE_HEADER, "")
    expected = sign(secret, request.path, request.get_data())
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "bad_signature",
                       f"{SIGNATURE_HEADER} is missing or does not match the path and body.",
                       headers={"WWW-Authenticate": CHALLENGE})  # a 401 must say how


def install(app: Flask) -> None:
    """Registers the signature check; call it before the JSON body check is installed."""
    app.before_request(check_signature)


@blp.route("/webhooks/approval/<id:order_id>", methods=["POST"])
@blp.arguments(ApprovalSchema())
@blp.response(200, ApprovalResponseSchema)
@blp.alt_response(401, schema=ErrorResponseSchema, description="Bad or missing signature.")
@blp.alt_response(404, schema=ErrorResponseSchema, description="No order awaits approval.")
@blp.alt_response(409, schema=ErrorResponseSchema, description="Already decided otherwise.")
def approval(decision: dict, order_id: str) -> dict:
    """Approve or reject an order; a replay of the same decision changes nothing."""
    order_id = ids.checked(order_id, settings())
    approval_id = contract.approval_id(order_id)
    job = newest_attempt(find_job(contract.order_job_id(order_id)))  # a retry awaits it too
    if job.tags.get(jobs.APPROVAL_TAG) != approval_id:
        raise ApiError(404, "not_found", "No order with this id awaits approval.")
    awaited = engine().get(approval_id)
    if awaited.state == TIMEDOUT or (awaited.pending and not job.pending):  # job canceled...
        raise ApiError(404, "not_found", "No order with this id awaits approval "
                       f"(its approval is {awaited.state}, the order {job.state}).")
    try:
        engine().resolve(approval_id, decision)
    except PromiseAlreadySettled as exc:  # decided before: the same way (a note aside) is a replay
        taken = engine().get(approval_id).value
        if not (isinstance(taken, dict) and taken.get("approved") == decision["approved"]):
            raise ApiError(409, "already_decided",
                           "This order was already decided with another answer.") from exc
        decision = taken
    return {"order_id": order_id, "decision": decision,
            "job": job_view(engine().get(job.id), detailed=True)}
