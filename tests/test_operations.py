"""Google AIP-151: google-api-core's operations client (its REST transport, with the HTTP rules
of google/longrunning/operations.proto) and its Operation future drive jobs to their result,
raise on failure and cancel, with no custom code."""

from __future__ import annotations

import pytest
from google.api_core import exceptions, operation, operations_v1
from google.auth.credentials import AnonymousCredentials
from google.protobuf import struct_pb2

from async_api.errors import GOOGLE_STATUS
from tests.support.http import assert_error
from tests.support.stack import Stack

# The HTTP rules google/longrunning/operations.proto declares for the Operations service (the
# transport's defaults are those of Cloud APIs, whose names start with projects/...).
OPERATIONS_HTTP_RULES = {
    "google.longrunning.Operations.ListOperations": [
        {"method": "get", "uri": "/v1/{name=operations}"}],
    "google.longrunning.Operations.GetOperation": [
        {"method": "get", "uri": "/v1/{name=operations/**}"}],
    "google.longrunning.Operations.DeleteOperation": [
        {"method": "delete", "uri": "/v1/{name=operations/**}"}],
    "google.longrunning.Operations.CancelOperation": [
        {"method": "post", "uri": "/v1/{name=operations/**}:cancel", "body": "*"}],
}


def operations_client(stack: Stack) -> operations_v1.AbstractOperationsClient:
    transport = operations_v1.transports.OperationsRestTransport(
        host=stack.gateway_url, credentials=AnonymousCredentials(),
        http_options=OPERATIONS_HTTP_RULES)
    return operations_v1.AbstractOperationsClient(transport=transport)


def future(stack: Stack, job_id: str) -> operation.Operation:
    client = operations_client(stack)
    return operation.from_gapic(client.get_operation(f"operations/{job_id}"), client,
                                struct_pb2.Value, metadata_type=struct_pb2.Struct,
                                grpc_metadata=())


def test_an_operation_future_drives_a_job_to_its_result(stack, nonce):
    job_id = f"op-{nonce}"
    assert stack.begin(job_id, {"foo": nonce}).status_code == 202
    job = future(stack, job_id)

    result = job.result(timeout=30)
    assert nonce in result.struct_value["result"]
    assert job.metadata["jobId"] == job_id
    assert job.metadata["state"] == "resolved"
    assert job.operation.name == f"operations/{job_id}"


def test_an_order_job_with_a_colon_in_its_id(stack, nonce):
    assert stack.post("/jobs", {"order_id": f"G-{nonce}", "items": ["x"]}).status_code == 202
    job = future(stack, f"order:G-{nonce}")

    assert job.result(timeout=30).struct_value["status"] == "shipped"
    encoded = stack.get(f"/v1/operations/order%3AG-{nonce}")
    assert encoded.json()["name"] == f"operations/order:G-{nonce}"
    assert encoded.json()["done"] is True


def test_a_failed_job_raises_unknown(stack, nonce):
    assert stack.begin(f"op-fail-{nonce}", {"fail": "no ink"}).status_code == 202

    with pytest.raises(exceptions.GoogleAPICallError) as raised:
        future(stack, f"op-fail-{nonce}").result(timeout=30)
    assert raised.value.grpc_status_code.value[0] == 2  # UNKNOWN
    assert "no ink" in raised.value.message


def test_cancel_ends_the_operation_cancelled(stack, nonce):
    job_id = f"op-cancel-{nonce}"
    assert stack.begin(job_id, {"sleep": 30}).status_code == 202
    job = future(stack, job_id)

    assert job.cancel() is True
    assert job.cancelled()
    with pytest.raises(exceptions.GoogleAPICallError) as raised:
        job.result(timeout=5)
    assert raised.value.grpc_status_code.value[0] == 1  # CANCELLED
    assert stack.get(f"/jobs/{job_id}").json()["status"] == "canceled"
    assert stack.post(f"/v1/operations/{job_id}:cancel", {}).json() == {}  # again: the same
    done = f"op-done-{nonce}"
    assert stack.begin(done, {}).status_code == 202
    stack.wait_settled(done)
    assert_error(stack.post(f"/v1/operations/{done}:cancel", {}), 409, "already_settled")


def test_cancel_with_a_percent_encoded_colon(stack, nonce):
    assert stack.post(f"/orders/E-{nonce}/approve-and-ship").status_code == 202

    assert stack.post(f"/v1/operations/order%3AE-{nonce}:cancel", {}).json() == {}
    assert stack.get(f"/v1/operations/order:E-{nonce}").json()["error"]["code"] == 1


def test_list_operations_filters_and_pages(stack, nonce):
    for n in range(3):
        assert stack.begin(f"list-{nonce}-{n}", {"n": n}).status_code == 202
    for n in range(3):
        stack.wait_settled(f"list-{nonce}-{n}")
    client = operations_client(stack)

    page = client.list_operations("operations", "done = true", page_size=2)
    names = [op.name for op in page]  # the pager follows nextPageToken
    assert {f"operations/list-{nonce}-{n}" for n in range(3)} <= set(names)
    first = stack.get("/v1/operations", params={"pageSize": 2, "filter": "done = false"})
    assert first.status_code == 200
    assert all(not op["done"] for op in first.json()["operations"])
    # the proto names, as AIP-158 writes them, page alike
    by_proto = stack.get("/v1/operations", params={"page_size": 1, "filter": "done = true"})
    assert len(by_proto.json()["operations"]) == 1
    token = by_proto.json()["nextPageToken"]
    following = stack.get("/v1/operations", params={"page_size": 1, "page_token": token,
                                                    "filter": "done = true"})
    assert following.status_code == 200, following.text
    assert following.json()["operations"] != by_proto.json()["operations"]
    resolved = stack.get("/v1/operations", params={"filter": 'metadata.state = "resolved"'})
    assert all(op["metadata"]["value"]["state"] == "resolved"
               for op in resolved.json()["operations"])


def test_wait_holds_until_the_job_is_done(stack, nonce):
    job_id = f"op-wait-{nonce}"
    assert stack.begin(job_id, {"sleep": 1}).status_code == 202

    done = stack.post(f"/v1/operations/{job_id}:wait", {"timeout": "5s"})
    assert done.status_code == 200
    assert done.json()["done"] is True
    assert done.json()["response"]["@type"] == "type.googleapis.com/google.protobuf.Value"

    unfinished = f"op-wait-long-{nonce}"
    assert stack.begin(unfinished, {"sleep": 30}).status_code == 202
    assert stack.post(f"/v1/operations/{unfinished}:wait", {"timeout": "0.2s"}).json()["done"] \
        is False


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("get", "/v1/operations/never-started", None, 404),
    ("post", "/v1/operations/never-started:cancel", {}, 404),
    ("post", "/v1/operations/never-started:wait", {"timeout": "1s"}, 404),
    ("post", "/v1/operations/never-started:pause", {}, 405),  # no such verb
    ("get", "/v1/operations?filter=name%3Dx", None, 400),
    ("get", "/v1/operations?filter=done%3Dmaybe", None, 400),
    ("get", "/v1/operations?pageSize=-1", None, 400),
    ("get", "/v1/operations?pageToken=not-ours", None, 400),
    ("post", "/v1/operations/x:wait", {"timeout": "soon"}, 400),
    ("post", "/v1/operations/x:wait", {"timeout": 5}, 400),
    ("get", "/v1/operations/x:cancel", None, 404),
    ("post", "/v1/operations/x", {}, 405),
])
def test_bad_requests_are_json_errors(stack, method, path, body, status):
    """Each a google.rpc.Status (AIP-193), whose `details` is a list: google-api-core raised
    AttributeError, not BadRequest, on an object there."""
    answer = stack.get(path) if method == "get" else stack.post(path, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (status, GOOGLE_STATUS[status]), error
    assert error["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"


def test_the_client_raises_the_error_a_bad_request_is(stack):
    """google-api-core turns the answers above into its exceptions; jobs are not deleted."""
    client = operations_client(stack)
    with pytest.raises(exceptions.BadRequest) as refused:
        client.list_operations("operations", "", page_size=-1)
    violations = [d for d in refused.value.details if "fieldViolations" in d]
    assert violations[0]["fieldViolations"][0]["field"] == "pageSize"
    with pytest.raises(exceptions.NotFound):
        client.get_operation("operations/never-started")
    with pytest.raises(exceptions.MethodNotAllowed):
        client.delete_operation("operations/never-started")
