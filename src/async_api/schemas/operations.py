"""Schemas of the AIP-151 operations API (google.longrunning.Operations over HTTP/JSON)."""

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, fields, pre_load, validate

from async_api.lro import DURATION_REGEX, FILTER_REGEX
from async_api.schemas import QueryInteger, QuerySchema


class ListOperationsQuerySchema(QuerySchema):
    filter = fields.String(load_default="", validate=validate.Length(max=500), metadata={
        "description": 'AIP-160: `done = true|false`, `metadata.state = "<job state>"`, '
                       "joined by AND; empty lists every job", "pattern": FILTER_REGEX})
    pageSize = QueryInteger(load_default=0, validate=validate.Range(min=0), metadata={
        "description": "0: 50; above 100: 100"})
    pageToken = fields.String(load_default="", validate=validate.Length(max=2000))

    @pre_load
    def _proto_names(self, data: Mapping[str, Any], **_: Any) -> Mapping[str, Any]:
        """Google's HTTP transcoding reads a query parameter by its proto name too
        (`page_size`, as AIP-158 writes it): ignored, it listed 50 for `page_size=2`."""
        aliases = {"page_size": "pageSize", "page_token": "pageToken"}
        proto = {camel: data[name] for name, camel in aliases.items() if name in data}
        return {**proto, **data} if proto else data  # the JSON name wins when both are sent


class WaitOperationSchema(Schema):
    timeout = fields.String(validate=validate.Regexp(DURATION_REGEX), metadata={
        "description": "A Duration such as `5s`; at most LONG_POLL_MAX_SECONDS, which is also "
                       "the default", "example": "5s"})
    name = fields.String(metadata={"description": "ignored: the path names the operation"})


class AnySchema(Schema):
    type_url = fields.String(data_key="@type", attribute="@type", required=True)
    value = fields.Raw(allow_none=True)


class StatusSchema(Schema):
    code = fields.Integer(required=True, metadata={
        "description": "google.rpc.Code: 1 canceled, 2 rejected, 4 timedout"})
    message = fields.String(required=True)


class OperationSchema(Schema):
    name = fields.String(required=True, metadata={"example": "operations/order:A1"})
    done = fields.Boolean(required=True)
    metadata = fields.Nested(AnySchema, required=True, metadata={
        "description": "google.protobuf.Struct: jobId, state, function, createTime, updateTime, "
                       "endTime once done, progressPercent and progressMessage once reported"})
    response = fields.Nested(AnySchema, metadata={
        "description": "when done and resolved: the result, a google.protobuf.Value"})
    error = fields.Nested(StatusSchema, metadata={"description": "when done otherwise"})


class ListOperationsSchema(Schema):
    operations = fields.List(fields.Nested(OperationSchema), required=True)
    nextPageToken = fields.String(required=True, metadata={
        "description": "empty on the last page"})


class EmptySchema(Schema):
    """google.protobuf.Empty."""


class GoogleErrorDetailSchema(Schema):
    type_url = fields.String(data_key="@type", attribute="@type", required=True, metadata={
        "example": "type.googleapis.com/google.rpc.ErrorInfo"})
    reason = fields.String(metadata={"description": "ErrorInfo: the gateway's error code, in "
                                                    "capitals", "example": "NOT_FOUND"})
    domain = fields.String()
    fieldViolations = fields.List(fields.Dict(), metadata={
        "description": "BadRequest: {field, description} of each field that is wrong"})


class GoogleStatusSchema(Schema):
    code = fields.Integer(required=True, metadata={"description": "the HTTP status"})
    message = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "NOT_FOUND"})
    details = fields.List(fields.Nested(GoogleErrorDetailSchema), required=True)


class GoogleErrorResponseSchema(Schema):
    """google.rpc.Status, as Google's HTTP APIs send it (AIP-193)."""

    error = fields.Nested(GoogleStatusSchema, required=True)
