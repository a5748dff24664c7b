"""Logs that follow a job: the gateway writes a JSON line per request and per job it starts, a
worker one when it starts and one when it finishes a job's task, and a W3C traceparent given to
the gateway (or minted by it) reaches the worker's lines through the job's durable promise.
Real processes (LOG_FORMAT=json) whose log files are read line by line."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from collections.abc import Iterator

import pytest

from async_api import logs
from tests.support.processes import Process, wait_until
from tests.support.stack import Stack

JSON = {"LOG_FORMAT": "json"}
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-01")


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("logs"))
    try:
        stack.start(["worker", "business", "db"], worker_env=JSON, gateway_env=JSON)
        yield stack
    finally:
        stack.stop()


def new_trace() -> tuple[str, str]:
    """A trace id and a traceparent a client would send for it."""
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def lines_about(process: Process, job_id: str) -> list[dict]:
    return [line for line in process.json_lines() if line.get("job_id") == job_id]


def worker_lines(stack: Stack, job_id: str, tasks: int) -> list[dict]:
    """The workers' lines about `job_id` once `tasks` of its tasks have finished."""
    def finished() -> list[dict] | None:
        found = [line for worker in stack.workers for line in lines_about(worker, job_id)]
        done = [line for line in found if line["msg"] == "task finished"]
        return found if len(done) >= tasks else None
    return wait_until(finished, 15, f"the workers' lines about {job_id}")


def test_the_request_the_job_and_the_workers_lines_share_one_trace(logged, nonce):
    trace_id, sent = new_trace()
    job_id, request_id = f"logged-{nonce}", f"req-{nonce}"
    answer = logged.post("/begin", {"sleep": 1, "nonce": nonce}, params={"id": job_id},
                         headers={"X-Request-ID": request_id, "traceparent": sent})
    assert answer.status_code == 202
    assert answer.headers["X-Request-ID"] == request_id
    returned = TRACEPARENT.fullmatch(answer.headers["traceparent"])
    assert returned and returned.group(1) == trace_id  # the same trace, the gateway's own span
    assert answer.headers["traceparent"] != sent
    assert logged.wait_settled(job_id)["status"] == "resolved"

    gateway = logged.gateways[0]
    (request,) = [line for line in gateway.json_lines() if line.get("request_id") == request_id
                  and line["msg"] == "request"]
    assert {key: request[key] for key in ("method", "route", "status", "trace_id", "job_id")} == \
        {"method": "POST", "route": "/begin", "status": 202, "trace_id": trace_id,
         "job_id": job_id}
    assert isinstance(request["duration_ms"], float) and request["duration_ms"] >= 0
    assert request["level"] == "INFO" and request["ts"].endswith("Z")
    (job,) = [line for line in lines_about(gateway, job_id) if line["msg"] == "job started"]
    assert (job["function"], job["trace_id"], job["request_id"]) == ("foo", trace_id, request_id)

    # the sleep suspends the job's first task; a second task resumes and resolves it
    seen = worker_lines(logged, job_id, tasks=2)
    assert [line["msg"] for line in seen] == ["task started", "task finished"] * 2
    assert {line["trace_id"] for line in seen} == {trace_id}
    assert {line["function"] for line in seen} == {"foo"}
    assert [line["outcome"] for line in seen if line["msg"] == "task finished"] == \
        ["suspended", "resolved"]
    assert all(line["duration_ms"] >= 0 for line in seen if line["msg"] == "task finished")


@pytest.mark.parametrize("headers", [
    {},
    {"traceparent": f"00-{'0' * 32}-{'1' * 16}-01", "X-Request-ID": "has spaces in it"},
    {"traceparent": "not a traceparent", "X-Request-ID": "x" * 129},
], ids=["none", "all-zero-trace-and-spaces", "garbage-and-too-long"])
def test_a_missing_or_invalid_trace_context_is_replaced_by_a_new_trace(logged, nonce, headers):
    job_id = f"minted-{nonce}"
    answer = logged.post("/begin", {"nonce": nonce}, params={"id": job_id}, headers=headers)
    assert answer.status_code == 202
    minted = TRACEPARENT.fullmatch(answer.headers["traceparent"])
    assert minted and minted.group(1) != "0" * 32
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"])
    assert logged.wait_settled(job_id)["status"] == "resolved"
    (job,) = [line for line in lines_about(logged.gateways[0], job_id)
              if line["msg"] == "job started"]
    assert (job["trace_id"], job["request_id"]) == \
        (minted.group(1), answer.headers["X-Request-ID"])
    assert {line["trace_id"] for line in worker_lines(logged, job_id, tasks=1)} == \
        {minted.group(1)}


def test_the_trace_follows_a_workflow_into_other_groups_and_the_jobs_it_starts(logged, nonce):
    chained_trace, chained_sent = new_trace()
    detached_trace, detached_sent = new_trace()
    chain, detached = f"chain-{nonce}", f"detached-{nonce}"
    assert logged.post("/await-chain", {}, params={"id": chain},
                       headers={"traceparent": chained_sent}).status_code == 202
    started = logged.post("/detached-chain", {}, params={"id": detached},
                          headers={"traceparent": detached_sent})
    assert started.status_code == 202
    child = started.json()["child_job_id"]
    assert logged.job_settled(chain)["status"] == "resolved"
    assert logged.job_settled(child)["status"] == "resolved"

    business, db = (next(w for w in logged.workers if f"worker-{group}-" in w.name)
                    for group in ("business", "db"))
    # place_order (business) calls query_orders (db): the call is the promise `<job>.1`
    assert {line["trace_id"] for line in worker_lines(logged, chain, tasks=2)} == \
        {chained_trace}
    called = lines_about(db, f"{chain}.1")
    assert called and {line["trace_id"] for line in called} == {chained_trace}
    assert lines_about(business, chain)
    # start_report's step starts build_report as a job of its own, in the same trace
    assert {line["trace_id"] for line in worker_lines(logged, child, tasks=2)} == \
        {detached_trace}
    (child_started,) = [line for worker in logged.workers for line in lines_about(worker, child)
                        if line["msg"] == "job started"]
    assert child_started["function"] == "build_report"


def test_a_resume_of_a_canceled_job_is_said_in_its_trace(logged, nonce):
    """The task that would resume a job canceled while it slept is completed unrun: the line
    that says so is one of the job's, found by its trace id like the others."""
    trace_id, sent = new_trace()
    job_id = f"canceled-asleep-{nonce}"
    assert logged.post("/begin", {"sleep": 1, "nonce": nonce}, params={"id": job_id},
                       headers={"traceparent": sent}).status_code == 202
    worker_lines(logged, job_id, tasks=1)  # suspended in its sleep
    assert logged.post(f"/jobs/{job_id}/cancel").status_code == 200

    def unrun() -> list[dict]:
        return [line for worker in logged.workers for line in lines_about(worker, job_id)
                if "completed without running" in line["msg"]]
    (line,) = wait_until(unrun, 15, f"the resume of {job_id} completed unrun")
    assert line["trace_id"] == trace_id


# --- in the test's process ------------------------------------------------------------------------


def formatted(monkeypatch, log_format: str, **fields: object) -> str:
    """A line as the formatter that LOG_FORMAT chooses writes it."""
    monkeypatch.setenv("LOG_FORMAT", log_format)
    chosen = logs.dict_config()["formatters"]["async_api"]["()"]
    formatter = getattr(logs, chosen.rsplit(".", 1)[1])()
    record = logging.LogRecord("async_api.test", logging.INFO, __file__, 1, "task %s", ("x",),
                               None)
    record.fields = fields
    with logs.bound(request_id="r-1", traceparent=f"00-{'a' * 32}-{'b' * 16}-01"):
        return formatter.format(record)


def test_json_and_text_lines_carry_the_same_fields(monkeypatch):
    line = json.loads(formatted(monkeypatch, "json", job_id="j-1", outcome="resolved"))
    assert {key: line[key] for key in ("level", "logger", "pid", "msg", "request_id", "job_id",
                                       "outcome")} == \
        {"level": "INFO", "logger": "async_api.test", "pid": os.getpid(), "msg": "task x",
         "request_id": "r-1", "job_id": "j-1", "outcome": "resolved"}
    text = formatted(monkeypatch, "text", job_id="j-1", outcome="resolved")
    assert text.endswith(f" INFO async_api.test[{os.getpid()}] task x request_id=r-1 "
                         "job_id=j-1 outcome=resolved")
    assert "traceparent" not in line and "traceparent" not in text


def test_an_unknown_log_format_is_refused(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.dict_config()
