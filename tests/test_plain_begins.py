"""Plain begins answered before Flask (async_api/plain.py): the same answer, headers and log
line as the route's, the job started once, and every refusal the route's, from one engine call.

In this process, against the shared stack's server and workers, as tests/test_plain_waits.py:
which requests reached the Flask route is what these tests count."""

from __future__ import annotations

import json

from async_api.app import create_app
from async_api.settings import Settings
from tests.support.http import assert_error
from tests.support.processes import free_port
from tests.test_plain_waits import engine_calls, request_lines, routed

BEGIN_ENDPOINT = "polling.begin"
# Not plainly "application/json": the route answers it.
ROUTED_JSON = "application/json; charset=utf-8"


def routed_begin(gateway, job_id: str, body: dict, **kwargs):
    return gateway.post(f"/begin?id={job_id}", data=json.dumps(body), content_type=ROUTED_JSON,
                        **kwargs)


def as_if(answer, job_id: str, other_id: str) -> tuple[dict, dict]:
    """The answer's body and headers, with `job_id` read as `other_id`."""
    def swapped(text: str) -> str:
        return text.replace(job_id, other_id)
    return (json.loads(swapped(answer.get_data(as_text=True))),
            {name: swapped(value) for name, value in answer.headers.items()
             if name not in ("X-Request-ID", "traceparent")})


def test_a_plain_begin_is_answered_as_the_route_answers_it_and_starts_the_job_once(
        stack, nonce):
    app = create_app(Settings(resonate_url=stack.engine_url))
    reached, started = routed(app, BEGIN_ENDPOINT), engine_calls(app, "invoke")
    gateway = app.test_client()
    plain_id, routed_id = f"plain-{nonce}", f"route-{nonce}"  # one length
    # The job's step holds it for a second: the dedup below answers the job's state now, which
    # must still be the first answer's pending (a job without it could resolve in between).
    body = {"foo": "plain", "work": 1}
    with request_lines() as lines:
        plain = gateway.post(f"/begin?id={plain_id}", json=body)
        via_route = routed_begin(gateway, routed_id, body)
        again = gateway.post(f"/begin?id={plain_id}", json=body)  # dedup
        minted = gateway.post("/begin")  # no id, no body: a new id, the default body

    assert reached == [routed_id]
    assert started == [plain_id, routed_id, plain_id, minted.json["promise"]]
    for answer in (plain, via_route):
        assert (answer.status_code, answer.content_type) == (202, "application/json")
    assert as_if(plain, plain_id, routed_id) == as_if(via_route, routed_id, routed_id)
    assert plain.data == again.data
    assert plain.headers["Location"] == f"http://localhost/wait?id={plain_id}"
    assert plain.headers["Operation-Location"] == f"http://localhost/jobs/{plain_id}/operation"
    assert minted.json["wait"] == f"/wait?id={minted.json['promise']}"
    variable = {"ts", "request_id", "trace_id", "duration_ms", "job_id"}
    plain_line, routed_line = [line for line in lines if line["msg"] == "request"][:2]
    assert list(plain_line) == list(routed_line)
    assert {k: v for k, v in plain_line.items() if k not in variable} == {
        k: v for k, v in routed_line.items() if k not in variable}
    assert plain_line["request_id"] == plain.headers["X-Request-ID"]
    assert (plain_line["route"], plain_line["status"], plain_line["job_id"]) == (
        "/begin", 202, plain_id)
    assert (stack.wait_settled(plain_id)["result"]["result"]
            == 'Processed: {"foo": "plain", "work": 1}')


def test_what_the_engine_refuses_is_answered_by_the_route_from_one_call(stack, nonce):
    """The id reused with another body, a reserved key, an unreachable engine."""
    app = create_app(Settings(resonate_url=stack.engine_url))
    gateway = app.test_client()
    job_id = f"clash-{nonce}"
    assert gateway.post(f"/begin?id={job_id}", json={"foo": 1}).status_code == 202
    reached, started = routed(app, BEGIN_ENDPOINT), engine_calls(app, "invoke")
    with request_lines() as lines:
        clash = gateway.post(f"/begin?id={job_id}", json={"foo": 2})
        reserved = gateway.post(f"/begin?id=typed-{nonce}", json={"__type": "x"})
    nowhere = create_app(Settings(resonate_url=f"http://127.0.0.1:{free_port()}",
                                  engine_timeout_seconds=1))
    nowhere_started = engine_calls(nowhere, "invoke")
    unreachable = nowhere.test_client().post(f"/begin?id={job_id}", json={"foo": 1})
    unreachable_minted = nowhere.test_client().post("/begin")  # the route keeps the new id

    assert_error(clash, 409, "conflict")
    assert_error(reserved, 400, "reserved_key")
    assert_error(unreachable, 503, "engine_unavailable")
    assert reached == started == [job_id, f"typed-{nonce}"]
    assert_error(unreachable_minted, 503, "engine_unavailable")
    assert len(nowhere_started) == 2 and nowhere_started[0] == job_id
    assert [(line["request_id"], line["status"]) for line in lines if line["msg"] == "request"] \
        == [(clash.headers["X-Request-ID"], 409), (reserved.headers["X-Request-ID"], 400)]


def test_an_id_another_principal_holds_is_the_routes_409_and_a_bad_token_its_401(stack, nonce):
    app = create_app(Settings(resonate_url=stack.engine_url,
                              api_tokens=("alice:token-a", "bob:token-b", "root:token-r"),
                              admin_principals=("root",)))
    gateway = app.test_client()
    alice, bob, root = ({"Authorization": f"Bearer token-{who}"} for who in "abr")
    job_id = f"mine-{nonce}"
    reached, started = routed(app, BEGIN_ENDPOINT), engine_calls(app, "invoke")

    mine = gateway.post(f"/begin?id={job_id}", json={"foo": "mine"}, headers=alice)
    theirs = gateway.post(f"/begin?id={job_id}", json={"foo": "mine"}, headers=bob)
    admin = gateway.post(f"/begin?id={job_id}", json={"foo": "mine"}, headers=root)
    nobody = gateway.post(f"/begin?id={job_id}", json={"foo": "mine"})

    assert mine.status_code == admin.status_code == 202
    assert_error(theirs, 409, "conflict")
    assert_error(nobody, 401, "unauthorized")
    assert started == [job_id] * 3  # not the 401's
    assert reached == [job_id]  # bob's 409 (Flask's auth hook answers the 401 before the route)
    assert gateway.get(f"/jobs/{job_id}", headers=alice).status_code == 200
    assert gateway.get(f"/jobs/{job_id}", headers=bob).status_code == 404


def test_behind_a_proxy_and_under_a_prefix_the_urls_are_the_routes(stack, nonce):
    app = create_app(Settings(resonate_url=stack.engine_url, trusted_proxy_hops=1))
    reached = routed(app, BEGIN_ENDPOINT)
    gateway = app.test_client()
    proxied = {"headers": {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example",
                           "X-Forwarded-Port": "8443"},
               "environ_overrides": {"SCRIPT_NAME": "/jobs-api"}}
    plain_id, routed_id = f"proxy-p-{nonce}", f"proxy-r-{nonce}"

    plain = gateway.post(f"/begin?id={plain_id}", json={}, **proxied)
    via_route = routed_begin(gateway, routed_id, {}, **proxied)

    assert reached == [routed_id]
    assert as_if(plain, plain_id, routed_id) == as_if(via_route, routed_id, routed_id)
    assert plain.headers["Location"] == f"https://api.example:8443/jobs-api/wait?id={plain_id}"
    assert plain.json["wait"] == f"/jobs-api/wait?id={plain_id}"
