"""Human in the loop, the synchronous quote, and the three RPC flows, end to end."""

from __future__ import annotations

import base64
import json

import pytest
import requests

from async_api.resources.webhooks import SIGNATURE_HEADER, sign
from tests.conftest import GATEWAY_ENV, SHARED_STACK_ON_SQLITE, store_rows
from tests.support.http import approval_path, approval_webhook, assert_error
from tests.support.in_process import offline_gateway
from tests.support.processes import wait_until
from workers import ledger
from workers.functions import unit_price_cents

SECRET = GATEWAY_ENV["WEBHOOK_SECRET"]


def send_webhook(stack, order_id: str, payload: dict, secret: str | None = SECRET):
    return requests.post(f"{stack.gateway_url}{approval_path(order_id)}", timeout=10,
                         **approval_webhook(order_id, payload, secret))


def test_an_order_waits_for_approval_then_ships_once(stack, nonce):
    order_id = f"H-{nonce}"
    started = stack.post(f"/orders/{order_id}/approve-and-ship")
    assert started.status_code == 202
    assert started.json()["job_id"] == f"order:{order_id}"

    wait_until(
        lambda: stack.get(f"/jobs/order:{order_id}").json()["status"] == "waiting_for_approval",
        15, "the job to wait for approval")
    job = stack.get(f"/jobs/order:{order_id}").json()
    assert job["waiting_for"] == f"approval:{order_id}"

    approved = send_webhook(stack, order_id, {"approved": True, "note": "ok"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["decision"] == {"approved": True, "note": "ok"}
    for same in ({"approved": True, "note": "ok"}, {"approved": True}):  # a note aside: once a 409
        replay = send_webhook(stack, order_id, same)
        assert replay.status_code == 200, replay.text  # harmless: the decision taken
        assert replay.json()["decision"] == {"approved": True, "note": "ok"}
    assert_error(send_webhook(stack, order_id, {"approved": False}), 409, "already_decided")

    done = stack.job_settled(f"order:{order_id}")
    assert done["status"] == "resolved"
    assert done["result"] == {"order_id": order_id, "status": "shipped"}
    assert ledger.count("ship", order_id, stack.ledger_path) == 1


def test_a_signed_approval_decides_its_own_order_only(stack, nonce):
    """Every approval body reads alike ({"approved": true}): signed over the body alone, one
    approval seen once (a log, a proxy) approved any other order, whoever owns it. The
    signature covers the path: replayed on another order, it is a 401 and that order waits."""
    mine, other = f"SA-{nonce}", f"SB-{nonce}"
    for order_id in (mine, other):
        assert stack.post(f"/orders/{order_id}/approve-and-ship").status_code == 202
    wait_until(lambda: stack.get(f"/jobs/order:{other}").json()["status"]
               == "waiting_for_approval", 15, "the other order to wait for approval")
    signed_for_mine = approval_webhook(mine, {"approved": True}, SECRET)

    replayed = requests.post(f"{stack.gateway_url}{approval_path(other)}", timeout=10,
                             **signed_for_mine)

    assert_error(replayed, 401, "bad_signature")
    assert stack.promise_state(f"approval:{other}") == "PENDING"
    assert stack.get(f"/jobs/order:{other}").json()["status"] == "waiting_for_approval"
    assert requests.post(f"{stack.gateway_url}{approval_path(mine)}", timeout=10,
                         **signed_for_mine).status_code == 200


def test_a_rejected_order_does_not_ship(stack, nonce):
    order_id = f"R-{nonce}"
    stack.post(f"/orders/{order_id}/approve-and-ship")

    assert send_webhook(stack, order_id, {"approved": False}).status_code == 200

    done = stack.job_settled(f"order:{order_id}")
    assert done["result"] == {"order_id": order_id, "status": "rejected"}
    assert ledger.count("ship", order_id, stack.ledger_path) == 0


def test_an_order_canceled_while_it_waits_is_not_resumed_by_its_approval(stack, nonce, request):
    """The approval of a canceled order still makes a task to resume it. The job has nothing
    left to run, so its worker completes that task at once. It once ran the workflow to its end,
    whose result the server refused, and left the task claimed: the server sent it again and the
    worker held it for good, renewing its claim. Sixteen such tasks and a worker took no work."""
    order_id = f"C-{nonce}"
    job_id = f"order:{order_id}"
    stack.post(f"/orders/{order_id}/approve-and-ship")

    def tasks() -> list[str]:
        return [state for (state,) in store_rows(
            stack, request, f"SELECT state FROM tasks WHERE root_promise_id = '{job_id}'")]

    def waits_for_approval() -> bool:  # its callback is there and its task completed
        (callbacks,) = store_rows(stack, request, "SELECT count(*) FROM callbacks WHERE "
                                  f"promise_id = 'approval:{order_id}'")[0]
        return int(callbacks) > 0 and tasks() == ["8"]  # 8: COMPLETED

    wait_until(waits_for_approval, 15, "the order to wait for its approval")
    assert stack.post(f"/jobs/{job_id}/cancel").status_code == 200
    # Settled on the server, as a webhook racing the cancel would (the webhook itself refuses
    # an order canceled before it came: see the test below).
    decision = base64.b64encode(json.dumps({"approved": True}).encode()).decode()
    assert requests.patch(f"{stack.engine_url}/promises/approval:{order_id}", timeout=10,
                          json={"state": "RESOLVED", "value": {"data": decision}}).ok

    wait_until(lambda: tasks() == ["8", "8"], 15, "the resume task to be completed")
    assert stack.get(f"/jobs/{job_id}").json()["status"] == "canceled"
    assert ledger.count("ship", order_id, stack.ledger_path) == 0


def test_a_canceled_order_awaits_no_approval_until_it_is_retried(make_stack, nonce):
    """The webhook of a canceled order is a 404: nothing awaits it. Its retry awaits the same
    approval, and the webhook then reaches the retry, which ships. One scheduler loop: the
    canceled order, suspended in its memory, awaited the approval first (the SDK then shared
    that await, and the approval resumed only the canceled order: the retry waited for good)."""
    stack = make_stack()
    stack.start(["worker"], {"WORKER_SCHEDULERS": "1"}, gateway_env=GATEWAY_ENV)
    order_id = f"CR-{nonce}"
    job_id = f"order:{order_id}"
    stack.post(f"/orders/{order_id}/approve-and-ship")
    wait_until(lambda: stack.get(f"/jobs/{job_id}").json()["status"] == "waiting_for_approval",
               15, "the order to wait for approval")
    assert stack.post(f"/jobs/{job_id}/cancel").status_code == 200

    assert_error(send_webhook(stack, order_id, {"approved": True}), 404, "not_found")
    attempt = stack.post(f"/jobs/{job_id}/retry").json()["job_id"]
    wait_until(lambda: stack.get(f"/jobs/{attempt}").json()["status"] == "waiting_for_approval",
               15, "the retry to wait for approval")
    approved = send_webhook(stack, order_id, {"approved": True})
    assert approved.status_code == 200, approved.text
    assert approved.json()["job"]["job_id"] == attempt
    request_id = approved.headers["X-Request-ID"]  # its log line names the job it resumed
    wait_until(lambda: [line.get("job_id") for line in stack.gateways[0].json_lines()
                        if line.get("request_id") == request_id] == [attempt], 5,
               "the webhook's request line, about the retry")
    assert stack.job_settled(attempt)["result"] == {"order_id": order_id, "status": "shipped"}
    assert send_webhook(stack, order_id, {"approved": True}).status_code == 200  # a replay
    assert_error(send_webhook(stack, order_id, {"approved": False}), 409, "already_decided")
    assert ledger.count("ship", order_id, stack.ledger_path) == 1


def test_webhook_signature_and_payload_are_checked_before_the_engine():
    gateway = offline_gateway(webhook_secret=SECRET)

    def send(payload: dict, secret: str | None = SECRET):
        return gateway.post(approval_path("S1"), **approval_webhook("S1", payload, secret))

    unsigned = send({"approved": True}, secret=None)
    assert_error(unsigned, 401, "bad_signature")
    assert 'header="X-Signature-256"' in unsigned.headers["WWW-Authenticate"]  # RFC 9110
    assert_error(send({"approved": True}, secret="guessed"), 401, "bad_signature")
    assert_error(send({"approved": "yes"}), 422, "unprocessable_entity")
    assert_error(send({"approved": True}), 503, "engine_unavailable")  # valid: on to the engine
    allowed = gateway.options("/webhooks/approval/S1")  # as on every route: no signature
    assert (allowed.status_code, "POST" in allowed.headers["Allow"]) == (204, True)


@pytest.mark.parametrize(("body", "code"), [
    (b"{not json", "malformed_json"), (b'{"approved": NaN}', "non_finite_number"),
    (b'{"approved": true, "approved": false}', "duplicate_key"),
    (b"[" * 100 + b"]" * 100, "too_deep"),
], ids=["malformed", "nan", "duplicate", "deep"])
def test_the_webhook_signature_is_checked_before_the_body_is_parsed(body, code):
    """A body the JSON check would refuse (400) is first a 401 when its signature is bad: an
    unsigned sender learns nothing about the parser. Signed, the same body reaches it."""
    gateway = offline_gateway(webhook_secret=SECRET)

    def send(signature: str | None):
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        return gateway.post(approval_path("S1"), data=body, headers=headers)

    path = approval_path("S1")
    for forged in (None, "", sign("guessed", path, body), sign(SECRET, path, body + b" ")):
        assert_error(send(forged), 401, "bad_signature")
    assert_error(send(sign(SECRET, path, body)), 400, code)


def test_webhooks_for_orders_that_await_no_approval_are_404(stack, nonce):
    order_id = f"S-{nonce}"
    stack.post(f"/orders/{order_id}/approve-and-ship")

    assert_error(send_webhook(stack, f"nobody-{nonce}", {"approved": True}), 404, "not_found")
    # a plain job with the same id shape is not an order awaiting approval
    stack.post("/jobs", {"order_id": f"P-{nonce}", "items": ["x"]})
    assert_error(send_webhook(stack, f"P-{nonce}", {"approved": True}), 404, "not_found")
    assert stack.get(f"/jobs/order:{order_id}").json()["status"] == "waiting_for_approval"


def test_a_quick_quote_answers_200(stack):
    response = stack.post("/price-quote", {"sku": "widget-1", "qty": 3})

    assert response.status_code == 200, response.text
    assert response.json() == {"quote_id": "quote:widget-1:3", "sku": "widget-1", "qty": 3,
                               "price": unit_price_cents("widget-1") * 3 / 100}


@SHARED_STACK_ON_SQLITE
def test_a_slow_quote_answers_202_then_the_stored_result(stack, nonce):
    sku = f"slow-{nonce}"
    late = stack.post("/price-quote", {"sku": sku, "qty": 2})

    assert late.status_code == 202
    assert late.json()["job_id"] == f"quote:{sku}:2"
    assert late.json()["status"] == "pending"
    assert late.headers["Location"] == f"{stack.gateway_url}/jobs/quote:{sku}:2"
    assert late.headers["Operation-Location"] == f"{stack.gateway_url}/jobs/quote:{sku}:2/operation"

    assert stack.job_settled(f"quote:{sku}:2")["status"] == "resolved"
    cached = stack.post("/price-quote", {"sku": sku, "qty": 2})
    assert cached.status_code == 200
    assert cached.json()["price"] == unit_price_cents(sku) * 2 / 100
    assert ledger.count("quote", f"{sku}:2", stack.ledger_path) == 1


@SHARED_STACK_ON_SQLITE
def test_a_canceled_quote_is_asked_again_not_kept(stack, nonce):
    """A quote canceled while it runs is no price: the same request starts its next attempt,
    whose price is then the stored answer, and a canceled attempt again starts the one after."""
    sku, first = f"slow-{nonce}", f"quote:slow-{nonce}:1"
    assert stack.post("/price-quote", {"sku": sku, "qty": 1}).status_code == 202
    assert stack.post(f"/jobs/{first}/cancel").json()["status"] == "canceled"

    again = stack.post("/price-quote", {"sku": sku, "qty": 1})
    assert again.status_code == 202, again.text
    second = again.json()["job_id"]
    assert second == f"{first}:attempt-2"
    assert stack.post(f"/jobs/{second}/cancel").json()["status"] == "canceled"
    third = stack.post("/price-quote", {"sku": sku, "qty": 1}).json()["job_id"]
    assert third == f"{first}:attempt-3"
    assert stack.job_settled(third)["status"] == "resolved"

    stored = stack.post("/price-quote", {"sku": sku, "qty": 1})
    assert stored.status_code == 200
    assert stored.json() == {"quote_id": third, "sku": sku, "qty": 1,
                             "price": unit_price_cents(sku) / 100}
    assert stack.get(f"/jobs/{first}").json()["status"] == "canceled"


@pytest.mark.parametrize("body", [{"sku": "a", "qty": 0}, {"sku": "a", "qty": "2"},
                                  {"sku": "", "qty": 1}, {"qty": 1}, {"sku": "a b", "qty": 1}])
def test_quote_input_is_validated(offline, body):
    assert_error(offline.post("/price-quote", json=body), 422, "unprocessable_entity")


def test_await_chain_uses_the_answer_of_another_group(stack, nonce):
    job_id = f"chain-{nonce}"
    started = stack.post(f"/await-chain?id={job_id}", {"customer": "bob", "item": "pen"})
    assert started.status_code == 202

    done = stack.job_settled(job_id)

    assert done["result"] == {"customer": "bob", "item": "pen", "previous_orders": 3,
                              "placed": True}


def test_detached_child_finishes_after_its_parent(stack, nonce):
    job_id = f"detached-{nonce}"
    started = stack.post(f"/detached-chain?id={job_id}", {"report": f"r-{nonce}"})
    assert started.status_code == 202
    child_id = started.json()["child_job_id"]
    assert child_id == f"{job_id}:report"

    parent = stack.job_settled(job_id)
    assert parent["result"] == {"started": child_id, "report": f"r-{nonce}"}
    child = stack.job_settled(child_id)
    assert child["result"] == {"report": f"r-{nonce}", "rows": len(f"r-{nonce}") * 10}
    # the parent did not wait for its child (which sleeps 1 s first), by the engine's clock
    assert stack.completed_on(job_id) < stack.completed_on(child_id)
    assert ledger.count("build_report", f"r-{nonce}", stack.ledger_path) == 1


def test_fan_out_combines_all_results(stack, nonce):
    job_id = f"fan-{nonce}"
    assert stack.post(f"/fan-out-workflow?id={job_id}", {"count": 5}).status_code == 202

    done = stack.job_settled(job_id)

    assert done["result"] == {"results": [0, 1, 4, 9, 16], "total": 30}


def test_flows_use_a_fixed_id_without_one(stack):
    first = stack.post("/fan-out-workflow")
    again = stack.post("/fan-out-workflow")

    assert first.json()["job_id"] == again.json()["job_id"] == "fan-out-workflow"
    assert stack.job_settled("fan-out-workflow")["result"]["total"] == 5


def test_openapi_document_and_docs_page(offline):
    spec = offline.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/begin", "/wait", "/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel",
                 "/orders/{order_id}/approve-and-ship", "/webhooks/approval/{order_id}",
                 "/price-quote", "/await-chain", "/detached-chain", "/fan-out-workflow"):
        assert path in spec["paths"], path
    submit = spec["paths"]["/jobs"]["post"]
    assert "requestBody" in submit
    assert {"202", "409", "422"} <= set(submit["responses"])
    assert "OrderJob" in spec["components"]["schemas"]

    page = offline.get("/docs")
    assert page.status_code == 200
    assert "swagger-ui" in page.text
    script = offline.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    for answer in (page, script):  # no other site frames the page (clickjacking)
        assert answer.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
        assert answer.headers["X-Frame-Options"] == "DENY"
    assert "X-Frame-Options" not in offline.get("/openapi.json").headers
