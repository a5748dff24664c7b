"""Schemas of /begin and /wait: the keys existing polling clients read."""

from marshmallow import Schema, fields, validate

from async_api.jobs import STATES
from async_api.schemas import ID_RULES, QueryFloat, QuerySchema, state_field


class BeginResponseSchema(Schema):
    promise = fields.String(required=True)
    status = state_field(STATES)
    wait = fields.String(required=True, metadata={"example": "/wait?id=job-001"})


class WaitQuerySchema(QuerySchema):
    id = fields.String(required=True, metadata=ID_RULES)
    timeout = QueryFloat(validate=validate.Range(min=0), metadata={
        "description": "Long-poll: hold the request until the job settles or this many "
                       "seconds pass (at most LONG_POLL_MAX_SECONDS); absent or 0, answer at "
                       "once."})


class WaitResponseSchema(Schema):
    status = state_field(STATES)
    promise_id = fields.String(required=True)
    message = fields.String()
    result = fields.Raw(allow_none=True)
    error = fields.Raw(allow_none=True)
