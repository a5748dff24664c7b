"""Schemas of the human-in-the-loop flow: the approval webhook's payload and answer."""

from typing import Any

from marshmallow import Schema, fields

from async_api.schemas.jobs import JobSchema


class StrictBoolean(fields.Boolean):
    """JSON true or false only: marshmallow's Boolean also takes 1, "yes", "on"..."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class ApprovalSchema(Schema):
    approved = StrictBoolean(required=True)
    note = fields.String(metadata={"description": "free text kept with the decision"})


class ApprovalResponseSchema(Schema):
    order_id = fields.String(required=True)
    decision = fields.Nested(ApprovalSchema, required=True)
    job = fields.Nested(JobSchema, required=True)
