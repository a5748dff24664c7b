"""Schemas of /begin and /wait: the keys existing polling clients read."""

from marshmallow import Schema, fields

from async_api.schemas import ID_RULES, QuerySchema


class BeginResponseSchema(Schema):
    promise = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "pending"})
    wait = fields.String(required=True, metadata={"example": "/wait?id=job-001"})


class WaitQuerySchema(QuerySchema):
    id = fields.String(required=True, metadata=ID_RULES)


class WaitResponseSchema(Schema):
    status = fields.String(
        required=True,
        metadata={"description": "pending, resolved, rejected, canceled or timedout"},
    )
    promise_id = fields.String(required=True)
    message = fields.String()
    result = fields.Raw(allow_none=True)
    error = fields.Raw(allow_none=True)
