"""Microsoft REST API guidelines, long-running operations: a stock azure-core LROPoller drives
the routes that start work to their result, and raises on a failed job, with no custom code."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from azure.core import PipelineClient
from azure.core.exceptions import HttpResponseError
from azure.core.polling import LROPoller
from azure.core.polling.base_polling import LROBasePolling
from azure.core.rest import HttpRequest

from tests.conftest import SHARED_STACK_ON_SQLITE
from tests.support.stack import Stack


def poller(stack: Stack, method: str, path: str, **kwargs: Any) -> LROPoller:
    """What a generated Azure SDK does: send the initial request, hand its response to
    LROPoller with LROBasePolling (Operation-Location, then the final GET of Location)."""
    client = PipelineClient(base_url=stack.gateway_url)
    initial = client.send_request(HttpRequest(method, f"{stack.gateway_url}{path}", **kwargs),
                                  _return_pipeline_response=True)
    assert initial.http_response.status_code == 202, initial.http_response.text()
    return LROPoller(client, initial, lambda response: response.http_response.json(),
                     LROBasePolling(timeout=0.1))


def test_lro_poller_drives_begin_to_the_wait_result(stack, nonce):
    job_id = f"lro-{nonce}"
    lro = poller(stack, "POST", f"/begin?id={job_id}", json={"foo": nonce})

    assert lro.result(timeout=30) == {"promise_id": job_id, "status": "resolved",
                                      "result": lro.result()["result"]}
    assert nonce in lro.result()["result"]["result"]
    assert lro.status() == "Succeeded"


def test_lro_poller_drives_an_order_job_to_its_result(stack, nonce):
    lro = poller(stack, "POST", "/jobs", json={"order_id": f"L-{nonce}", "items": ["x"]})

    job = lro.result(timeout=30)
    assert job["job_id"] == f"order:L-{nonce}"
    assert job["status"] == "resolved"
    assert job["result"]["status"] == "shipped"


def test_lro_poller_drives_a_flow_to_its_result(stack, nonce):
    lro = poller(stack, "POST", f"/fan-out-workflow?id=fan-{nonce}", json={"count": 4})

    assert lro.result(timeout=30)["result"] == {"results": [0, 1, 4, 9], "total": 14}


def test_lro_poller_raises_on_a_failed_job(stack, nonce):
    lro = poller(stack, "POST", f"/begin?id=lro-fail-{nonce}", json={"fail": "out of paper"})

    with pytest.raises(HttpResponseError):
        lro.result(timeout=30)
    assert lro.status() == "Failed"


def test_the_status_monitor_says_running_then_the_outcome(stack, nonce):
    job_id = f"mon-{nonce}"
    begun = stack.begin(job_id, {"sleep": 1})
    monitor_url = begun.headers["Operation-Location"]
    assert monitor_url == f"{stack.gateway_url}/jobs/{job_id}/operation"
    assert begun.headers["Location"] == f"{stack.gateway_url}/wait?id={job_id}"

    running = requests.get(monitor_url, timeout=10)
    assert running.status_code == 200
    assert running.json()["status"] == "Running"
    assert running.headers["Retry-After"] == "1"
    assert running.json()["createdDateTime"].endswith("Z")
    assert "result" not in running.json() and "error" not in running.json()

    done = requests.get(monitor_url, headers={"Prefer": "wait=5"}, timeout=10)
    assert done.json()["status"] == "Succeeded", done.json()
    assert "Retry-After" not in done.headers
    assert done.json()["createdDateTime"] <= done.json()["lastUpdatedDateTime"]

    canceled = stack.begin(f"mon-c-{nonce}", {"sleep": 30}).headers["Operation-Location"]
    assert stack.post(f"/jobs/mon-c-{nonce}/cancel").status_code == 200
    assert requests.get(canceled, timeout=10).json()["status"] == "Canceled"


def test_every_route_that_starts_work_answers_202_with_operation_location(stack, nonce):
    started = {
        f"order:S-{nonce}": stack.post("/jobs", {"order_id": f"S-{nonce}", "items": ["x"]}),
        f"order:Ap-{nonce}": stack.post(f"/orders/Ap-{nonce}/approve-and-ship"),
        f"ac-{nonce}": stack.post(f"/await-chain?id=ac-{nonce}", {}),
        f"dc-{nonce}": stack.post(f"/detached-chain?id=dc-{nonce}", {}),
        f"quote:slow-{nonce}:1": stack.post("/price-quote", {"sku": f"slow-{nonce}", "qty": 1}),
    }
    for job_id, answer in started.items():
        assert answer.status_code == 202, (job_id, answer.text)
        assert answer.headers["Operation-Location"] == \
            f"{stack.gateway_url}/jobs/{job_id}/operation"
        assert answer.headers["Location"] == f"{stack.gateway_url}/jobs/{job_id}"
        assert requests.get(answer.headers["Operation-Location"], timeout=10).ok


def test_unknown_and_malformed_monitors_are_json_404s(stack):
    for path in ("/jobs/nope-never/operation", "/jobs/bad%20id/operation"):
        answer = stack.get(path)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"


@SHARED_STACK_ON_SQLITE
def test_forwarded_headers_count_only_behind_a_trusted_proxy(stack, nonce):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example.com"}
    untrusted = stack.post(f"/begin?id=fw-{nonce}", {}, headers=forwarded)
    assert untrusted.headers["Location"].startswith(stack.gateway_url)

    behind_proxy = stack.start_gateway({"TRUSTED_PROXY_HOPS": "1"}, workers=1)
    trusted = requests.post(f"{behind_proxy.url}/begin?id=fw-{nonce}", json={},
                            headers=forwarded, timeout=10)
    assert trusted.headers["Location"] == f"https://api.example.com/wait?id=fw-{nonce}"
    assert trusted.headers["Operation-Location"] == \
        f"https://api.example.com/jobs/fw-{nonce}/operation"
    behind_proxy.stop()


@SHARED_STACK_ON_SQLITE
def test_a_client_cannot_choose_the_path_prefix_of_the_urls_it_is_sent(stack, nonce):
    """gunicorn takes a SCRIPT_NAME header from any client on loopback (its forwarder_headers),
    as from a proxy on the same host: the client chose the prefix of the absolute URLs, or got
    a 500 when the path did not start with it."""
    prefixed = stack.post(f"/begin?id=sn-{nonce}", {}, headers={"SCRIPT_NAME": "/begin"})
    assert prefixed.status_code == 202, prefixed.text
    assert prefixed.headers["Location"] == f"{stack.gateway_url}/wait?id=sn-{nonce}"
    not_a_prefix = stack.get("/healthz", headers={"SCRIPT_NAME": "/elsewhere"})
    assert not_a_prefix.status_code == 200, not_a_prefix.text
