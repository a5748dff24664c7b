"""Polls of a settled job answered from memory before Flask (async_api/settled_waits.py): the
same answer, ids, log line and metrics as the route's, and only to whoever may see the job.

In this process, against the shared stack's server and workers: which requests reached the
Flask route is what these tests count, and only the app in this process can be counted."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator

import requests
from flask import Flask, request
from prometheus_client import REGISTRY

from async_api import logs
from async_api.app import create_app
from async_api.resources import polling
from async_api.settings import Settings
from tests.support.http import assert_error
from tests.support.processes import wait_until

WAIT_ENDPOINT = "polling.wait"


def routed(app: Flask) -> list[str]:
    """The ids of the /wait requests that reached the Flask route, from now on."""
    seen: list[str] = []
    route = app.view_functions[WAIT_ENDPOINT]

    def counted(*args, **kwargs):
        seen.append(request.args.get("id", ""))
        return route(*args, **kwargs)

    app.view_functions[WAIT_ENDPOINT] = counted
    return seen


def waits_answered() -> float:
    return REGISTRY.get_sample_value(
        "async_api_http_requests_total", {"method": "GET", "route": "/wait", "status": "200"}) or 0


def settled_in(gateway, job_id: str, headers: dict[str, str]):
    """The first settled answer to polls of `job_id`."""
    def poll():
        answer = gateway.get("/wait", query_string={"id": job_id}, headers=headers)
        return answer if answer.json["status"] != "pending" else None
    return wait_until(poll, 30, f"{job_id} to settle")


def test_a_second_poll_of_a_settled_job_is_answered_from_memory_as_flask_answered_it(
        stack, nonce):
    job_id = f"memo-{nonce}"
    stack.begin(job_id, {"foo": "memo"})
    over_gunicorn = stack.wait_settled(job_id)  # polled there too: from its own memory
    app = create_app(Settings(resonate_url=stack.engine_url))
    reached = routed(app)
    gateway = app.test_client()
    counted = waits_answered()

    first = gateway.get("/wait", query_string={"id": job_id})
    remembered = app.extensions[polling.SETTLED_ANSWERS].get(job_id)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    again = gateway.get("/wait", query_string={"id": job_id},
                        headers={"X-Request-ID": "client-chosen-1", "traceparent": traceparent})
    as_long_poll = gateway.get("/wait", query_string={"id": job_id, "timeout": "1"})
    escaped = gateway.get(f"/wait?id={job_id.replace('-', '%2D')}")

    assert reached == [job_id, job_id, job_id]  # all but `again`
    assert first.json == over_gunicorn
    assert remembered.body == first.data == again.data == as_long_poll.data == escaped.data
    assert first.status_code == again.status_code == 200
    assert dict(first.headers).keys() == dict(again.headers).keys()
    assert first.content_type == again.content_type == "application/json"
    assert again.headers["Content-Length"] == str(len(again.data))
    assert again.headers["X-Request-ID"] == "client-chosen-1"
    assert again.headers["traceparent"].split("-")[1] == traceparent.split("-")[1]
    assert again.headers["traceparent"] != traceparent  # a span of its own in the client's trace
    assert waits_answered() - counted == 4
    # One memory per app: another app (another server, where the id may be another job's)
    # renders its own.
    assert create_app(Settings(resonate_url=stack.engine_url)).extensions[
        polling.SETTLED_ANSWERS].get(job_id) is None


@contextlib.contextmanager
def request_lines() -> Iterator[list[dict]]:
    """The request log lines written inside the block, as JSON, formatted when written: the
    fields bound for a request are read then."""
    stream, lines = io.StringIO(), []
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("async_api.requests")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines())


def test_each_answer_logs_the_same_line(stack, nonce):
    job_id = f"memo-log-{nonce}"
    stack.begin(job_id, {"foo": "memo"})
    stack.wait_settled(job_id)
    app = create_app(Settings(resonate_url=stack.engine_url))
    reached = routed(app)
    gateway = app.test_client()
    with request_lines() as lines:
        answers = [gateway.get("/wait", query_string={"id": job_id}) for _ in range(2)]

    assert reached == [job_id]  # the route's answer, then memory's
    routed_line, remembered_line = lines
    for answer, line in zip(answers, lines, strict=True):
        assert line["request_id"] == answer.headers["X-Request-ID"]
        assert line["trace_id"] == answer.headers["traceparent"].split("-")[1]
    variable = {"ts", "request_id", "trace_id", "duration_ms"}
    assert list(routed_line) == list(remembered_line)  # the same fields, in the same order
    assert {key: value for key, value in remembered_line.items() if key not in variable} == {
        key: value for key, value in routed_line.items() if key not in variable}
    assert (remembered_line["route"], remembered_line["status"], remembered_line["job_id"]) == (
        "/wait", 200, job_id)


def test_only_a_principal_who_may_see_the_job_gets_it_from_memory(stack, nonce):
    app = create_app(Settings(resonate_url=stack.engine_url,
                              api_tokens=("alice:token-a", "bob:token-b", "root:token-r"),
                              admin_principals=("root",)))
    reached = routed(app)
    gateway = app.test_client()
    alice, bob, root = ({"Authorization": f"Bearer token-{who}"} for who in "abr")
    job_id = f"owned-{nonce}"
    assert gateway.post(f"/begin?id={job_id}", json={"foo": "owned"}, headers=alice) \
        .status_code == 202
    settled = settled_in(gateway, job_id, alice)  # the route renders and remembers it
    reached.clear()

    assert gateway.get("/wait", query_string={"id": job_id}, headers=alice).data == settled.data
    assert gateway.get("/wait", query_string={"id": job_id}, headers=root).data == settled.data
    assert reached == []
    assert_error(gateway.get("/wait", query_string={"id": job_id}, headers=bob), 404,
                 "not_found")
    for headers in ({}, {"Authorization": "Bearer token-x"}, {"Authorization": "token-a"}):
        response = gateway.get("/wait", query_string={"id": job_id}, headers=headers)
        assert_error(response, 401, "unauthorized")
    assert reached == [job_id]  # bob's, whom the route refused; the 401s came before it


def test_over_gunicorn_every_poll_of_a_settled_job_is_answered_and_logged(stack, nonce):
    job_id = f"memo-e2e-{nonce}"
    stack.begin(job_id, {"foo": "e2e"})
    settled = stack.wait_settled(job_id)
    # Both gunicorn processes have answered it settled by now, or will render it once.
    answers = [requests.get(f"{stack.gateway_url}/wait", params={"id": job_id}, timeout=5)
               for _ in range(6)]

    assert {(answer.status_code, answer.headers["Content-Type"]) for answer in answers} == {
        (200, "application/json")}
    assert all(answer.json() == settled for answer in answers)
    request_ids = [answer.headers["X-Request-ID"] for answer in answers]
    assert len(set(request_ids)) == len(answers)

    def logged() -> bool:
        lines = {line.get("request_id"): line for gateway in stack.gateways
                 for line in gateway.json_lines() if line.get("msg") == "request"}
        return all(lines.get(request_id, {}).get("job_id") == job_id and
                   lines[request_id]["route"] == "/wait" for request_id in request_ids)
    wait_until(logged, 10, "a log line for each poll")
