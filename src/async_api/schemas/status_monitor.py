"""Schemas of the status monitor (Microsoft REST API guidelines, long-running operations)."""

from marshmallow import Schema, fields

from async_api.lro import LRO_STATUSES
from async_api.schemas import state_field


class MonitorErrorSchema(Schema):
    code = fields.String(required=True, metadata={
        "description": "the job's state: rejected, canceled or timedout"})
    message = fields.String(required=True)


class StatusMonitorSchema(Schema):
    id = fields.String(required=True, metadata={"example": "order:A1"})
    status = state_field(LRO_STATUSES, description="Running until the job settles; NotStarted "
                                                   "is never sent (the engine does not tell)")
    createdDateTime = fields.String(required=True, allow_none=True,
                                    metadata={"example": "2026-11-25T19:40:03.123Z"})
    lastUpdatedDateTime = fields.String(required=True, allow_none=True)
    percentComplete = fields.Integer(metadata={
        "description": "0-100, once the job's workflow reported progress"})
    result = fields.Raw(allow_none=True, metadata={"description": "when Succeeded"})
    error = fields.Nested(MonitorErrorSchema, metadata={"description": "when Failed or Canceled"})
