"""Plain polls answered before Flask (async_api/plain.py): the same answer, ids, log line
and metrics as the route's, only to whoever may see the job, and the engine asked once.

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
from tests.support.processes import free_port, wait_until

WAIT_ENDPOINT = "polling.wait"



def routed(app: Flask, endpoint: str = WAIT_ENDPOINT) -> list[str]:
    """The ids of the requests that reached the Flask route `endpoint`, from now on."""
    seen: list[str] = []
    route = app.view_functions[endpoint]

    def counted(*args, **kwargs):
        seen.append(request.args.get("id", ""))
        return route(*args, **kwargs)

    app.view_functions[endpoint] = counted
    return seen


def engine_calls(app: Flask, method: str = "get") -> list[str]:
    """The ids the app's engine is called with through `method`, from now on."""
    engine, asked = app.extensions["async_api.engine"], []
    call = getattr(engine, method)

    def counted(job_id: str, *args, **kwargs):
        asked.append(job_id)
        return call(job_id, *args, **kwargs)

    setattr(engine, method, counted)
    return asked


def kept(app: Flask, job_id: str):
    return app.extensions[polling.ANSWERS].settled.get(job_id)


def waits_answered() -> float:
    return REGISTRY.get_sample_value(
        "async_api_http_requests_total", {"method": "GET", "route": "/wait", "status": "200"}) or 0


def settled_in(gateway, job_id: str, headers: dict[str, str]):
    """The first settled answer to polls of `job_id`."""
    def poll():
        answer = gateway.get("/wait", query_string={"id": job_id}, headers=headers)
        return answer if answer.json["status"] != "pending" else None
    return wait_until(poll, 30, f"{job_id} to settle")


def test_a_settled_job_is_answered_as_flask_answers_it_then_from_memory(stack, nonce):
    job_id = f"memo-{nonce}"
    stack.begin(job_id, {"foo": "memo"})
    over_gunicorn = stack.wait_settled(job_id)  # polled there too: from its own memory
    app = create_app(Settings(resonate_url=stack.engine_url))
    reached, asked = routed(app), engine_calls(app)
    gateway = app.test_client()
    counted = waits_answered()

    first = gateway.get("/wait", query_string={"id": job_id})
    remembered = kept(app, job_id)
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    again = gateway.get("/wait", query_string={"id": job_id},
                        headers={"X-Request-ID": "client-chosen-1", "traceparent": traceparent})
    as_long_poll = gateway.get("/wait", query_string={"id": job_id, "timeout": "1"})
    escaped = gateway.get(f"/wait?id={job_id.replace('-', '%2D')}")

    assert reached == [job_id, job_id]  # the long-poll and the escaped id
    assert asked == [job_id, job_id, job_id]  # the engine keeps it: no server call after one
    assert first.json == over_gunicorn
    assert remembered.body == first.data == again.data == as_long_poll.data == escaped.data
    assert dict(first.headers).keys() == dict(escaped.headers).keys()
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
    assert kept(create_app(Settings(resonate_url=stack.engine_url)), job_id) is None


def test_a_pending_job_is_answered_as_flask_answers_it_and_not_kept(stack, nonce):
    """An order awaiting its approval stays pending until its webhook comes."""
    order_id = f"plain-{nonce}"
    job_id = f"order:{order_id}"  # ":" as it is, as a client that does not escape it sends it
    assert stack.post(f"/orders/{order_id}/approve-and-ship").status_code == 202
    wait_until(lambda: stack.get(f"/jobs/{job_id}").json()["status"] == "waiting_for_approval",
               15, "the job to wait for its approval")
    app = create_app(Settings(resonate_url=stack.engine_url))
    reached, asked = routed(app), engine_calls(app)
    gateway = app.test_client()

    plain = [gateway.get(f"/wait?id={job_id}") for _ in range(2)]
    escaped = gateway.get(f"/wait?id={job_id.replace(':', '%3A')}")

    assert reached == [job_id]  # the escaped id alone
    assert asked == [job_id] * 3  # a pending job is read on every poll
    assert kept(app, job_id) is None
    for answer in plain:
        assert answer.status_code == 200
        assert answer.data == escaped.data
        assert answer.json == {"status": "pending", "promise_id": job_id,
                               "message": "Processing in progress"}
        assert answer.headers["Retry-After"] == escaped.headers["Retry-After"] == "1"
        assert dict(answer.headers).keys() == dict(escaped.headers).keys()
        assert answer.headers["Content-Length"] == str(len(answer.data))


def test_what_the_engine_says_of_a_plain_poll_is_answered_by_the_route_from_one_read(
        stack, nonce):
    """No job, a workflow step, another app's unreachable engine: the route's error answers,
    logged once, while the engine was asked once."""
    app = create_app(Settings(resonate_url=stack.engine_url))
    reached, asked = routed(app), engine_calls(app)
    gateway = app.test_client()
    job_id = f"step-{nonce}"
    stack.begin(job_id, {"foo": "step"})
    stack.wait_settled(job_id)
    with request_lines() as lines:
        unknown = gateway.get(f"/wait?id=nothing-{nonce}", headers={"X-Request-ID": "mine-1"})
        step = gateway.get(f"/wait?id={job_id}.1")
    nowhere = create_app(Settings(resonate_url=f"http://127.0.0.1:{free_port()}",
                                  engine_timeout_seconds=1))
    nowhere_asked = engine_calls(nowhere)
    unreachable = nowhere.test_client().get(f"/wait?id={job_id}")

    assert_error(unknown, 404, "not_found")
    assert_error(step, 404, "not_found")
    assert_error(unreachable, 503, "engine_unavailable")
    assert reached == [f"nothing-{nonce}", f"{job_id}.1"]
    assert asked == reached
    assert nowhere_asked == [job_id]
    assert unknown.headers["X-Request-ID"] == "mine-1"
    assert [(line["request_id"], line["status"], line["job_id"]) for line in lines] == [
        ("mine-1", 404, f"nothing-{nonce}"),
        (step.headers["X-Request-ID"], 404, f"{job_id}.1")]


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
        answers = [gateway.get(f"/wait?id={job_id.replace('-', '%2D')}")]  # the route's
        answers += [gateway.get("/wait", query_string={"id": job_id}) for _ in range(2)]

    assert len(reached) == 1  # the route's answer, then a read's and memory's
    routed_line, *plain_lines = lines
    for answer, line in zip(answers, lines, strict=True):
        assert line["request_id"] == answer.headers["X-Request-ID"]
        assert line["trace_id"] == answer.headers["traceparent"].split("-")[1]
    variable = {"ts", "request_id", "trace_id", "duration_ms"}
    for plain_line in plain_lines:
        assert list(routed_line) == list(plain_line)  # the same fields, in the same order
        assert {key: value for key, value in plain_line.items() if key not in variable} == {
            key: value for key, value in routed_line.items() if key not in variable}
        assert (plain_line["route"], plain_line["status"], plain_line["job_id"]) == (
            "/wait", 200, job_id)


def test_only_a_principal_who_may_see_the_job_gets_it(stack, nonce):
    settings = Settings(resonate_url=stack.engine_url,
                        api_tokens=("alice:token-a", "bob:token-b", "root:token-r"),
                        admin_principals=("root",))
    app = create_app(settings)
    reached = routed(app)
    gateway = app.test_client()
    alice, bob, root = ({"Authorization": f"Bearer token-{who}"} for who in "abr")
    job_id = f"owned-{nonce}"
    assert gateway.post(f"/begin?id={job_id}", json={"foo": "owned"}, headers=alice) \
        .status_code == 202
    settled = settled_in(gateway, job_id, alice)  # rendered and remembered
    assert reached == []
    other = create_app(settings)  # bob's first poll there: read, found his not, to the route
    other_reached, other_asked = routed(other), engine_calls(other)
    assert_error(other.test_client().get("/wait", query_string={"id": job_id}, headers=bob),
                 404, "not_found")
    assert other_reached == other_asked == [job_id]

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
