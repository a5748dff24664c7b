"""Bearer-token auth: API_TOKENS turns it on; probes, docs and webhooks stay open."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
import requests

from async_api import auth, listing
from async_api.engine import JOB_TAG
from async_api.jobs import STATES
from async_api.settings import Settings
from tests.support.http import assert_error
from tests.support.in_process import offline_gateway
from tests.support.processes import wait_until

TOKENS = ("alpha-token", "beta-token")


@pytest.fixture
def client():
    return offline_gateway(api_tokens=TOKENS, webhook_secret="signing-secret")


def assert_unauthorized(response) -> None:
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.get_json()["error"]["message"]


@pytest.mark.parametrize("header", [
    None, "", "Bearer", "Bearer ", "Bearer wrong", "Basic alpha-token", "alpha-token",
    "Bearer alpha-token-and-more", "Bearer alpha", "Bearer alpha-token,beta-token",
])
def test_missing_or_wrong_token_is_401_json(client, header):
    headers = {} if header is None else {"Authorization": header}
    assert_unauthorized(client.post("/begin?id=x", headers=headers))
    assert_unauthorized(client.get("/wait?id=x", headers=headers))
    assert_unauthorized(client.get("/no-such-route", headers=headers))
    assert client.options("/jobs", headers=headers).status_code == 204  # methods, no data


@pytest.mark.parametrize("header", ["Bearer alpha-token", "Bearer beta-token",
                                    "bearer beta-token"])
def test_any_configured_token_passes(client, header):
    # /wait without an id fails validation before any engine call: a 400, not a 401
    assert_error(client.get("/wait", headers={"Authorization": header}), 400,
                 "bad_request")
    assert_error(client.get("/no-such-route", headers={"Authorization": header}), 404,
                 "not_found")


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json", "/docs", "/docs/swagger",
                                  "/webhooks/", "/webhooks/stripe/evt-1"])
def test_open_paths_need_no_token(client, path):
    assert client.get(path).status_code in (200, 404)


@pytest.mark.parametrize("path", ["/healthzz", "/docsx", "/webhooks", "/openapi.json/x",
                                  "/begin/../healthz"])
def test_paths_that_only_look_open_need_a_token(client, path):
    assert_unauthorized(client.get(path))


def test_webhooks_need_a_token_when_they_are_not_signed():
    client = offline_gateway(api_tokens=TOKENS)  # no WEBHOOK_SECRET
    assert_unauthorized(client.post("/webhooks/approval/B7", json={"approved": True}))


def test_auth_is_off_without_tokens(offline):
    assert_error(offline.get("/wait"), 400, "bad_request")  # not 401


def test_tokens_come_from_a_comma_separated_env(monkeypatch):
    monkeypatch.setenv("API_TOKENS", " one, two ,,")
    assert Settings.from_env().api_tokens == ("one", "two")
    assert "one" not in repr(Settings.from_env())
    monkeypatch.setenv("API_TOKENS", "")
    assert Settings.from_env().api_tokens == ()


def test_openapi_declares_the_bearer_scheme_only_when_on(client, offline):
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]
    assert "security" not in offline.get("/openapi.json").get_json()
    # what needs no token says so, and what needs one documents its 401
    paths = spec["paths"]
    for open_path, method in (("/healthz", "get"), ("/readyz", "get"),
                              ("/webhooks/approval/{order_id}", "post")):  # signed instead
        assert paths[open_path][method]["security"] == [], open_path
    for guarded, method in (("/begin", "post"), ("/jobs/{job_id}", "get"),
                            ("/v1/operations", "get")):
        assert "security" not in paths[guarded][method]
        assert "401" in paths[guarded][method]["responses"], guarded


def test_gunicorn_gateway_enforces_tokens_end_to_end(stack, nonce):
    gateway = stack.start_gateway({"API_TOKENS": ",".join(TOKENS)}, workers=1)
    job_id = f"auth-{nonce}"

    refused = requests.post(f"{gateway.url}/begin", params={"id": job_id}, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert refused.json()["error"]["code"] == "unauthorized"
    assert requests.get(f"{gateway.url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{gateway.url}/readyz", timeout=5).status_code == 200
    assert_error(stack.poll(job_id), 404, "not_found")  # the refused begin created nothing

    auth = {"Authorization": f"Bearer {TOKENS[1]}"}
    accepted = requests.post(f"{gateway.url}/begin", params={"id": job_id}, headers=auth,
                             json={"nonce": nonce}, timeout=10)
    assert accepted.status_code == 202
    assert accepted.json()["promise"] == job_id
    assert stack.wait_settled(job_id)["status"] == "resolved"  # the open gateway reads it


def test_tokens_name_principals_and_bare_tokens_share_one():
    assert auth.principals(("alice:tokA", "bob:tok:B", "bare", "odd name:tokC")) == {
        "tokA": "alice", "tok:B": "bob", "bare": "default", "odd name:tokC": "default"}


def test_a_job_belongs_to_the_principal_that_started_it(stack, nonce):
    """Alice's job is not found by Bob, on any route that names it, nor in his lists; an
    admin principal sees it; Bob cannot take its id."""
    gateway = stack.start_gateway({"API_TOKENS": "alice:tokA,bob:tokB,ops:tokO",
                                   "ADMIN_PRINCIPALS": "ops"}, workers=1)

    def call(method: str, path: str, token: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{gateway.url}{path}", timeout=10,
                                headers={"Authorization": f"Bearer {token}"}, **kwargs)

    job_id, failed_id = f"alice-{nonce}", f"alice-failed-{nonce}"
    assert call("POST", "/begin", "tokA", params={"id": job_id},
                json={"sleep": 60, "nonce": nonce}).status_code == 202
    assert call("POST", "/begin", "tokA", params={"id": failed_id},
                json={"fail": "no", "nonce": nonce}).status_code == 202
    stack.wait_settled(failed_id)

    for method, path in [
        ("GET", f"/jobs/{job_id}"), ("GET", f"/jobs/{job_id}/steps"),
        ("GET", f"/jobs/{job_id}/operation"), ("GET", f"/wait?id={job_id}"),
        ("GET", f"/v1/operations/{job_id}"), ("POST", f"/jobs/{job_id}/cancel"),
        ("POST", f"/v1/operations/{job_id}:cancel"), ("POST", f"/jobs/{failed_id}/retry"),
    ]:
        assert_error(call(method, path, "tokB"), 404, "not_found")
    assert_error(call("POST", "/begin", "tokB", params={"id": job_id},
                      json={"sleep": 60, "nonce": nonce}), 409, "conflict")

    def listed(token: str) -> set[str]:
        jobs = call("GET", "/jobs", token, params={"limit": 100}).json()["jobs"]
        operations = call("GET", "/v1/operations", token, params={"pageSize": 100}).json()
        return {j["job_id"] for j in jobs} | {
            o["name"].removeprefix("operations/") for o in operations["operations"]}

    assert {job_id, failed_id} <= listed("tokA")
    assert not {job_id, failed_id} & listed("tokB")
    assert {job_id, failed_id} <= listed("tokO")

    assert call("GET", f"/jobs/{job_id}", "tokO").json()["status"] == "pending"  # an admin
    retry = call("POST", f"/jobs/{failed_id}/retry", "tokA").json()
    assert_error(call("GET", f"/jobs/{retry['job_id']}", "tokB"), 404, "not_found")  # inherited
    assert call("POST", f"/jobs/{job_id}/cancel", "tokA").json()["status"] == "canceled"

    # a job a workflow starts (the detached chain's report) belongs to its parent's owner
    parent = call("POST", "/detached-chain", "tokA", params={"id": f"alice-chain-{nonce}"},
                  json={"report": "r"}).json()
    wait_until(lambda: call("GET", f"/jobs/{parent['child_job_id']}", "tokA").status_code
               == 200, 15, "the report job to start")
    assert_error(call("GET", f"/jobs/{parent['child_job_id']}", "tokB"), 404, "not_found")


def test_a_job_nobody_owns_is_canceled_or_retried_by_an_admin_alone(stack, nonce):
    """Everyone sees a shared quote and a job started while auth was off; Bob canceled
    Alice's quote for her, and anyone could cancel or retry the others. Now a 403."""
    gateway = stack.start_gateway({"API_TOKENS": "alice:tokA,bob:tokB,ops:tokO",
                                   "ADMIN_PRINCIPALS": "ops",
                                   "QUOTE_TIMEOUT_SECONDS": "0.1"}, workers=1)

    def call(method: str, path: str, token: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{gateway.url}{path}", timeout=10,
                                headers={"Authorization": f"Bearer {token}"}, **kwargs)

    open_id, failed_id = f"open-{nonce}", f"open-failed-{nonce}"
    assert stack.begin(open_id, {"sleep": 30}).status_code == 202  # the shared stack: auth off
    assert stack.begin(failed_id, {"fail": "no", "nonce": nonce}).status_code == 202
    stack.wait_settled(failed_id)
    quote = call("POST", "/price-quote", "tokA", json={"sku": f"slow-{nonce[:12]}", "qty": 2})
    assert quote.status_code == 202, quote.text

    for token in ("tokA", "tokB"):
        seen = call("GET", f"/jobs/{open_id}", token)
        assert seen.status_code == 200  # seen by all
        assert set(seen.json()["links"]) == {"self", "steps", "status_monitor"}  # no 403 linked
        for path in (f"/jobs/{open_id}/cancel", f"/jobs/{quote.json()['job_id']}/cancel",
                     f"/jobs/{failed_id}/retry"):
            assert_error(call("POST", path, token), 403, "forbidden")
        assert_error(call("POST", f"/v1/operations/{open_id}:cancel", token), 403, "forbidden")
    assert {"cancel", "retry"} <= set(call("GET", f"/jobs/{open_id}", "tokO").json()["links"])
    assert call("POST", f"/jobs/{failed_id}/retry", "tokO").status_code == 202
    assert call("POST", f"/jobs/{open_id}/cancel", "tokO").json()["status"] == "canceled"


def _forged_engine_cursor(tags: dict[str, str]) -> str:
    """A cursor of server v0.7.0's own making: a JWT signed with the key its source holds."""
    def part(value: dict) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    unsigned = part({"alg": "HS256", "typ": "JWT"}) + "." + part(
        {"Next": {"id": "*", "states": None, "tags": tags, "limit": 100, "sortId": None}})
    signature = hmac.new(b"resonate", unsigned.encode(), hashlib.sha256).digest()
    return unsigned + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")


def test_a_cursor_lists_only_the_jobs_of_whoever_uses_it(stack, nonce):
    """A cursor from Alice's listing, or from an admin's, or one forged with the server's own
    key, shows Bob none of Alice's jobs: each is a 400."""
    gateway = stack.start_gateway({"API_TOKENS": "alice:tokA,bob:tokB,ops:tokO",
                                   "ADMIN_PRINCIPALS": "ops"}, workers=1)

    def call(path: str, token: str, **params: str | int) -> requests.Response:
        return requests.get(f"{gateway.url}{path}", params=params, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})

    for number in range(3):
        assert requests.post(f"{gateway.url}/begin", params={"id": f"alice-{number}-{nonce}"},
                             json={"nonce": nonce}, timeout=10,
                             headers={"Authorization": "Bearer tokA"}).status_code == 202
    alices = call("/jobs", "tokA", limit=1).json()["next_cursor"]
    admins = call("/jobs", "tokO", limit=1).json()["next_cursor"]
    alices_token = call("/v1/operations", "tokA", pageSize=1).json()["nextPageToken"]
    assert call("/jobs", "tokA", limit=1, cursor=alices).json()["jobs"]  # hers, page two
    every_job = listing.JobFilter(frozenset(STATES))  # what a listing without filters asks
    forged = listing.encode_cursor(_forged_engine_cursor({JOB_TAG: "true"}), None, every_job)
    for cursor in (alices, admins, forged):
        assert_error(call("/jobs", "tokB", cursor=cursor), 400, "invalid_cursor")
    assert_error(call("/v1/operations", "tokB", pageToken=alices_token), 400, "invalid_cursor")
    assert_error(call("/jobs", "tokA", cursor=forged), 400, "invalid_cursor")
