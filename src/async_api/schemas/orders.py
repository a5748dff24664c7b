"""Schemas of the human-in-the-loop flow: the approval webhook's payload and answer."""

from marshmallow import Schema, fields

from async_api.schemas.jobs import JobSchema


class ApprovalSchema(Schema):
    approved = fields.Boolean(required=True, truthy={True}, falsy={False})
    note = fields.String(metadata={"description": "free text kept with the decision"})


class ApprovalResponseSchema(Schema):
    order_id = fields.String(required=True)
    decision = fields.Nested(ApprovalSchema, required=True)
    job = fields.Nested(JobSchema, required=True)
