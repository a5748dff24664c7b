"""Listing tells the truth: a filtered page is full unless it is the last, even where the
engine's own pages mix the wanted jobs with others (its rejected pages hold canceled and
timed-out jobs too), and a cursor the gateway did not issue is a 400."""

from __future__ import annotations

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
    for cursor in ("nonsense", "p1.bm9wZQ", "p1.eyJjIjoiZm9yZ2VkIiwiYSI6bnVsbH0"):
        answer = stack.get("/jobs", params={"cursor": cursor})
        assert answer.status_code == 400, (cursor, answer.text)
        assert answer.json()["error"]["code"] == "invalid_cursor"
