"""The peer's HTTP side: POST /begin and GET /wait with this service's contract."""

from __future__ import annotations

import hashlib
from typing import Any

import redis
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from bench.celery_peer.tasks import REDIS_URL, canonical, foo
from bench.celery_peer.tasks import app as celery

JOB_TTL_SECONDS = 86400
STATES = {"SUCCESS": "resolved", "FAILURE": "rejected", "REVOKED": "rejected"}

app = Flask(__name__)
store = redis.Redis.from_url(REDIS_URL)


def error(status: int, code: str, message: str) -> ResponseReturnValue:
    return jsonify(error={"code": code, "message": message}), status


def job_key(job_id: str) -> str:
    return f"peer:job:{job_id}"


def state(job_id: str) -> tuple[str, Any]:
    result = celery.AsyncResult(job_id)
    status = STATES.get(result.state, "pending")
    if status == "pending":
        return status, None
    return status, result.result if status == "resolved" else repr(result.result)


@app.post("/begin")
def begin() -> ResponseReturnValue:
    job_id = request.args.get("id", "")
    if not job_id:
        return error(400, "missing_id", "id is required")
    data = request.get_json(silent=True) if request.content_length else {"foo": "bar"}
    if data is None:
        return error(400, "bad_json", "the body is not JSON")
    fingerprint = hashlib.sha256(canonical(data).encode()).hexdigest()
    if store.set(job_key(job_id), fingerprint, nx=True, ex=JOB_TTL_SECONDS):
        foo.apply_async(args=[data], task_id=job_id)
        status = "pending"
    elif store.get(job_key(job_id)) != fingerprint.encode():
        return error(409, "conflict", "id reused with another body")
    else:
        status, _ = state(job_id)
    wait = f"/wait?id={job_id}"
    return jsonify(promise=job_id, status=status, wait=wait), 202, {"Location": wait}


@app.get("/wait")
def wait() -> ResponseReturnValue:
    job_id = request.args.get("id", "")
    if not job_id:
        return error(400, "missing_id", "id is required")
    if not store.exists(job_key(job_id)):
        return error(404, "not_found", "unknown job")
    status, value = state(job_id)
    answer: dict[str, Any] = {"status": status, "promise_id": job_id}
    if status == "resolved":
        answer["result"] = value
    elif status == "rejected":
        answer["error"] = value
    return jsonify(answer)


@app.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")
