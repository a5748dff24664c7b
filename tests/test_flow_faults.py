"""A worker SIGKILLed in the middle of each workflow; survivors of the same group finish it.

Steps write their ledger row as their last act, so "exactly one row" means exactly one
completed execution, whatever was killed.
"""

from __future__ import annotations

import requests

from tests.support.http import approval_path, approval_webhook
from tests.support.processes import wait_until
from workers import ledger

SLOW = {"STEP_PAUSE_SECONDS": "1.5"}


def test_await_chain_survives_the_death_of_both_sides(make_stack, nonce):
    stack = make_stack()
    workers = stack.start(["business", "db"], SLOW)
    job_id, customer = f"chain-{nonce}", f"c-{nonce}"
    stack.post(f"/await-chain?id={job_id}", {"customer": customer, "item": "pen"})
    # the db worker claimed the call and is inside query_orders' step (1.5 s), so the business
    # worker holds place_order awaiting its answer
    wait_until(lambda: ledger.count("query_orders:started", customer, stack.ledger_path), 15,
               "query_orders to start")
    assert ledger.count("query_orders", customer, stack.ledger_path) == 0

    workers["db"].kill()  # in the middle of query_orders
    workers["business"].kill()  # while it awaits the answer
    assert ledger.count("query_orders", customer, stack.ledger_path) == 0, "killed too late"
    stack.start_worker("db", SLOW)  # marks its start too
    stack.start_worker("business")

    done = stack.job_settled(job_id, timeout=60)
    assert done["status"] == "resolved"
    assert done["result"]["placed"] is True
    assert ledger.count("query_orders:started", customer, stack.ledger_path) == 2  # cut, redone
    assert ledger.count("query_orders", customer, stack.ledger_path) == 1
    assert ledger.count("place_order", f"{customer}:pen", stack.ledger_path) == 1


def test_fan_out_survives_a_worker_killed_mid_way(make_stack, nonce):
    stack = make_stack()
    workers = stack.start(["worker"], SLOW)
    job_id = f"fan-{nonce}"
    stack.post(f"/fan-out-workflow?id={job_id}", {"count": 4})
    # all four squares inside their step (they run at once), none completed yet
    wait_until(lambda: all(ledger.count("square:started", str(n), stack.ledger_path)
                           for n in range(4)), 20, "the steps to start")

    workers["worker"].kill()
    stack.start_worker("worker")
    stack.start_worker("worker")  # two survivors share what is left

    done = stack.job_settled(job_id, timeout=90)
    assert done["result"] == {"results": [0, 1, 4, 9], "total": 14}
    for number in range(4):
        assert ledger.count("square", str(number), stack.ledger_path) == 1


def test_an_approval_wait_survives_a_worker_restart(make_stack, nonce):
    stack = make_stack()
    workers = stack.start(["worker"], gateway_env={"WEBHOOK_SECRET": "s3cret"})
    order_id = f"W-{nonce}"
    stack.post(f"/orders/{order_id}/approve-and-ship")
    wait_until(lambda: stack.get(f"/jobs/order:{order_id}").json()["status"]
               == "waiting_for_approval", 15, "the job to wait for approval")

    workers["worker"].kill()
    approved = requests.post(f"{stack.gateway_url}{approval_path(order_id)}", timeout=10,
                             **approval_webhook(order_id, {"approved": True}, "s3cret"))
    assert approved.status_code == 200  # accepted while no worker runs at all
    stack.start_worker("worker")

    done = stack.job_settled(f"order:{order_id}", timeout=60)
    assert done["result"] == {"order_id": order_id, "status": "shipped"}
    assert ledger.count("ship", order_id, stack.ledger_path) == 1
