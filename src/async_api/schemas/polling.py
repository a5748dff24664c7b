"""Schemas of /begin and /wait: the keys existing polling clients read."""

from marshmallow import fields

from async_api.schemas import QuerySchema, Schema
from async_api.settings import Settings

# What ids.checked() enforces, documented so that clients (and schemathesis) know the rules.
ID_RULES = {
    "pattern": f"^{Settings().id_pattern.pattern}$",
    "minLength": 1,
    "maxLength": Settings.max_id_length,
}


class BeginQuerySchema(QuerySchema):
    id = fields.String(metadata={"description": "Job id; a UUID is minted when absent.",
                                 **ID_RULES})


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
