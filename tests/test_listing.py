"""Listing tells the truth: a filtered page is full unless it is the last, even where the
engine's own pages mix the wanted jobs with others (its rejected pages hold canceled and
timed-out jobs too), and a cursor the gateway did not issue is a 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from async_api import listing
from async_api.engine import CANCELED, PENDING, REJECTED, RESOLVED, TIMEDOUT
from async_api.jobs import STATES, WAITING_FOR_APPROVAL
from tests.conftest import GATEWAY_ENV
from tests.support.http import approval_path, approval_webhook
from tests.support.processes import wait_until
from tests.support.stack import Stack


def pages(stack: Stack, path: str, query: dict, items: str, cursor_in: str, cursor_out: str
          ) -> list[list[dict]]:
    found, query = [], dict(query)
    while True:
        answer = stack.get(path, params=query)
        assert answer.status_code == 200, answer.text
        found.append(answer.json()[items])
        if not answer.json()[cursor_out]:
            return found
        query[cursor_in] = answer.json()[cursor_out]


def test_filtered_pages_are_full_until_the_last(stack, nonce):
    canceled = []
    for n in range(3):  # newest first: failed and canceled jobs interleave
        assert stack.begin(f"ls-fail-{nonce}-{n}", {"fail": "no"}).status_code == 202
        stack.wait_settled(f"ls-fail-{nonce}-{n}")
        job_id = f"ls-cancel-{nonce}-{n}"
        assert stack.begin(job_id, {"sleep": 30}).status_code == 202
        assert stack.post(f"/jobs/{job_id}/cancel").status_code == 200
        canceled.append(job_id)

    listed = pages(stack, "/jobs", {"state": "cancelled", "limit": 2}, "jobs", "cursor",
                   "next_cursor")
    assert all(len(page) == 2 for page in listed[:-1]), [len(page) for page in listed]
    ids = [job["job_id"] for page in listed for job in page]
    assert len(ids) == len(set(ids))
    assert set(canceled) <= set(ids)
    assert {job["status"] for page in listed for job in page} == {"canceled"}

    operations = pages(stack, "/v1/operations", {"filter": "done = true", "pageSize": 2},
                       "operations", "pageToken", "nextPageToken")
    assert all(len(page) == 2 for page in operations[:-1])
    assert {f"operations/{job_id}" for job_id in canceled} <= \
        {op["name"] for page in operations for op in page}


def test_a_cursor_not_issued_by_the_gateway_is_a_400(stack):
    every_job = listing.JobFilter(frozenset(STATES))
    first_page = listing.encode_cursor(None, None, every_job)  # the gateway issues none such
    for cursor in ("nonsense", "p1.bm9wZQ", "p1.eyJjIjoiZm9yZ2VkIiwiYSI6bnVsbH0", first_page):
        answer = stack.get("/jobs", params={"cursor": cursor})
        assert answer.status_code == 400, (cursor, answer.text)
        assert answer.json()["error"]["code"] == "invalid_cursor"


def test_a_cursor_sent_with_other_filters_is_a_400(stack, nonce):
    """The engine's cursor keeps the first page's state filter: sent with another, it listed
    wrongly (an empty last page while older jobs matched). AIP-158: an error instead."""
    for n in range(2):
        assert stack.begin(f"lc-{nonce}-{n}", {"nonce": nonce}).status_code == 202
        stack.wait_settled(f"lc-{nonce}-{n}")
    cursor = stack.get("/jobs", params={"state": "resolved", "limit": 1}).json()["next_cursor"]
    token = stack.get("/v1/operations", params={"filter": "done = true", "pageSize": 1}
                      ).json()["nextPageToken"]

    for other in ({"state": "rejected"}, {}, {"state": "resolved", "function": "foo"}):
        answer = stack.get("/jobs", params={**other, "limit": 1, "cursor": cursor})
        assert answer.status_code == 400, (other, answer.text)
        assert "other filters" in answer.json()["error"]["message"]
    answer = stack.get("/v1/operations", params={"filter": "done = false", "pageToken": token})
    assert answer.status_code == 400, answer.text
    # the page size may change from page to page
    assert stack.get("/jobs", params={"state": "resolved", "limit": 5, "cursor": cursor}
                     ).json()["jobs"]


def test_filters_by_several_states_function_and_creation_time(stack, nonce):
    before = datetime.now(UTC) - timedelta(seconds=1)  # server and test share the clock
    order = f"order:LF-{nonce}"
    assert stack.post("/jobs", {"order_id": f"LF-{nonce}", "items": ["x"]}).status_code == 202
    assert stack.begin(f"lf-fail-{nonce}", {"fail": "no"}).status_code == 202
    assert stack.begin(f"lf-cancel-{nonce}", {"sleep": 30}).status_code == 202
    assert stack.post(f"/jobs/lf-cancel-{nonce}/cancel").status_code == 200
    stack.job_settled(order)
    stack.wait_settled(f"lf-fail-{nonce}")
    window = {"created_after": before.isoformat(), "limit": 100}

    def listed(**query) -> set[str]:
        found = pages(stack, "/jobs", {**window, **query}, "jobs", "cursor", "next_cursor")
        return {job["job_id"] for page in found for job in page}

    mine = {order, f"lf-fail-{nonce}", f"lf-cancel-{nonce}"}
    assert mine <= listed()
    failed_or_canceled = {f"lf-fail-{nonce}", f"lf-cancel-{nonce}"}
    assert listed(state=["rejected", "canceled"]) & mine == failed_or_canceled
    assert listed(function="process_order") & mine == {order}
    assert listed(function="foo", state="resolved") & mine == set()
    assert listed(created_before=before.isoformat()) & mine == set()
    later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
    assert listed(created_after=later) == set()


def test_waiting_for_approval_lists_exactly_the_jobs_a_job_view_calls_so(stack, nonce):
    """The job view's state is a filter too: the orders whose approval is pending, shown as
    waiting, not a plain pending job; paged, its cursor keeps the filter; `pending` lists them
    all, as pending."""
    since = datetime.now(UTC).isoformat()  # server and test share the clock
    orders = [f"LW-{nonce}-{n}" for n in range(3)]
    waiting = [f"order:{order_id}" for order_id in orders]
    for order_id in orders:
        assert stack.post(f"/orders/{order_id}/approve-and-ship").status_code == 202
    sleeping, failed = f"lw-sleep-{nonce}", f"lw-fail-{nonce}"
    assert stack.begin(sleeping, {"sleep": 30}).status_code == 202
    assert stack.begin(failed, {"fail": "no"}).status_code == 202
    stack.wait_settled(failed)
    for job_id in waiting:
        wait_until(lambda job_id=job_id: stack.get(f"/jobs/{job_id}").json()["status"]
                   == WAITING_FOR_APPROVAL, 15, f"{job_id} to wait for approval")

    ours = {*waiting, sleeping, failed}

    def listed(*states: str, limit: int = 100) -> dict[str, dict]:
        """The jobs of this test a listing shows (a slow machine may start others meanwhile)."""
        found = pages(stack, "/jobs", {"state": list(states), "created_after": since,
                                       "limit": limit}, "jobs", "cursor", "next_cursor")
        return {job["job_id"]: job for page in found for job in page if job["job_id"] in ours}

    alone = listed(WAITING_FOR_APPROVAL)
    assert set(alone) == set(waiting)
    assert {job["status"] for job in alone.values()} == {WAITING_FOR_APPROVAL}
    assert alone[waiting[0]]["waiting_for"] == f"approval:{orders[0]}"
    assert listed(WAITING_FOR_APPROVAL, limit=1) == alone  # pages of one, the same filter
    with_failed = listed(WAITING_FOR_APPROVAL, REJECTED)
    assert set(with_failed) == {*waiting, failed}
    assert with_failed[failed]["status"] == REJECTED
    pending = listed(PENDING)
    assert set(pending) == {*waiting, sleeping}
    assert {job["status"] for job in pending.values()} == {PENDING}

    cursor = stack.get("/jobs", params={"state": WAITING_FOR_APPROVAL, "created_after": since,
                                        "limit": 1}).json()["next_cursor"]
    other = stack.get("/jobs", params={"state": PENDING, "created_after": since, "limit": 1,
                                       "cursor": cursor})
    assert other.status_code == 400, other.text

    approved = requests.post(f"{stack.gateway_url}{approval_path(orders[0])}", timeout=10,
                             **approval_webhook(orders[0], {"approved": True},
                                                GATEWAY_ENV["WEBHOOK_SECRET"]))
    assert approved.status_code == 200, approved.text
    assert set(listed(WAITING_FOR_APPROVAL)) == set(waiting[1:])
    for job_id in (sleeping, *waiting[1:]):
        assert stack.post(f"/jobs/{job_id}/cancel").status_code == 200
    assert listed(WAITING_FOR_APPROVAL) == {}


def test_a_cursor_knows_waiting_for_approval_from_pending():
    """Both filter the engine's pending jobs: the fingerprint alone tells their cursors apart."""
    waiting = listing.JobFilter(frozenset({WAITING_FOR_APPROVAL}))
    cursor = listing.encode_cursor("engine-cursor", None, waiting)
    assert listing.decode_cursor(cursor, waiting) == ("engine-cursor", None)
    assert listing.engine_state(waiting.states) == PENDING
    for other in ({PENDING}, {PENDING, WAITING_FOR_APPROVAL}):
        with pytest.raises(listing.OtherFilters):
            listing.decode_cursor(cursor, listing.JobFilter(frozenset(other)))


@pytest.mark.parametrize("query", [{"state": "lost"}, {"state": ""}, {"function": "rm"},
                                   {"state": "canceled,timedout"},
                                   {"state": "waiting"},
                                   {"created_after": "yesterday"}])
def test_bad_listing_filters_are_422(offline, query):
    answer = offline.get("/jobs", query_string=query)
    assert answer.status_code == 422
    assert answer.json["error"]["details"]


def test_states_and_a_jobs_steps_are_found_through_the_servers_indexes(stack, nonce):
    """The server reads a search's states and a job's children through indexes
    (scripts/resonate-patches/0004-filters-use-indexes.patch): `pending` still lists exactly the
    running jobs, and a job's steps are its own beside ids that differ from it only in case
    or in the character its "_" matches as a LIKE wildcard."""
    running = f"ix-run-{nonce}"
    assert stack.begin(running, {"sleep": 30}).status_code == 202
    alike = [f"ix_{nonce}", f"IX_{nonce}", f"ixA{nonce}"]
    for job_id in alike:
        assert stack.begin(job_id, {"job": job_id}).status_code == 202
    for job_id in alike:
        stack.wait_settled(job_id)

    pending = stack.listed("pending")
    assert running in pending and set(pending.values()) == {"pending"}
    assert not set(alike) & set(pending)
    for job_id in alike:
        steps = stack.get(f"/jobs/{job_id}/steps").json()["steps"]
        assert [step["id"] for step in steps] == [f"{job_id}.1"], job_id
    assert stack.post(f"/jobs/{running}/cancel").status_code == 200


def test_the_engine_is_asked_for_the_clients_page_when_its_filter_is_the_whole_filter():
    """At 1M jobs stored an engine page of 100 cost twice one of 20 (README, "Cost as the
    store grows"); a filter the gateway applies itself still reads full engine pages."""
    for states in (STATES, {PENDING}, {RESOLVED}, {REJECTED, CANCELED, TIMEDOUT}):
        assert listing.engine_page_size(listing.JobFilter(frozenset(states)), 20) == 20
    for wanted in (listing.JobFilter(frozenset({CANCELED})),
                   listing.JobFilter(frozenset({PENDING, RESOLVED})),
                   listing.JobFilter(frozenset(STATES), function="foo"),
                   listing.JobFilter(frozenset(STATES), created_after=1),
                   listing.JobFilter(frozenset(STATES), created_before=1)):
        assert listing.engine_page_size(wanted, 20) == listing.ENGINE_PAGE_SIZE, wanted
