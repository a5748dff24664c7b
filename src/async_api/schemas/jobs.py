"""Schemas of the job API: order submissions, job views, listings."""

from datetime import UTC
from typing import Any

from marshmallow import Schema, fields, validate

from async_api.contract import FUNCTIONS
from async_api.jobs import STATE_ALIASES, STATES, WAITING_FOR_APPROVAL
from async_api.schemas import NEW_ID_CHARACTERS, QuerySchema, state_field

JOB_STATUSES = (*STATES, WAITING_FOR_APPROVAL)


class OrderJobSchema(Schema):
    """An order to process; unknown fields are refused (422) so that typos do not pass."""

    order_id = fields.String(required=True,
                             validate=[validate.Length(1, 100), NEW_ID_CHARACTERS],
                             metadata={"example": "A1"})
    items = fields.List(fields.String(validate=validate.Length(1, 200)), required=True,
                        validate=validate.Length(1, 100), metadata={"example": ["x", "y"]})


class JobLinksSchema(Schema):
    self = fields.String(required=True)
    cancel = fields.String(required=True)


class JobSchema(Schema):
    job_id = fields.String(required=True, metadata={"example": "order:A1"})
    status = state_field(JOB_STATUSES, description=f"{WAITING_FOR_APPROVAL}: pending, and its "
                                                   "workflow waits for its approval webhook")
    links = fields.Nested(JobLinksSchema, required=True)
    result = fields.Raw(allow_none=True, metadata={"description": "when resolved"})
    reason = fields.Raw(allow_none=True,
                        metadata={"description": "when rejected, canceled or timedout"})
    waiting_for = fields.String(metadata={"description": "the promise a waiting job awaits"})


class StateFilter(fields.String):
    """A job state to list; older words for the same states are read as today's."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        state = super()._deserialize(value, attr, data, **kwargs)
        return STATE_ALIASES.get(state, state)


class JobListQuerySchema(QuerySchema):
    # Repeated (state=canceled&state=timedout), not comma-separated: a comma inside one value
    # would read as two states where it should be a 422.
    state = fields.List(StateFilter(validate=validate.OneOf(STATES)),
                        validate=validate.Length(min=1), metadata={
                            "description": "job states, repeatable: jobs in any of them"})
    function = fields.String(validate=validate.OneOf([f.name for f in FUNCTIONS]), metadata={
        "description": "only jobs running this durable function"})
    created_after = fields.AwareDateTime(default_timezone=UTC, metadata={
        "description": "only jobs created at or after this time (RFC 3339; UTC if no offset)"})
    created_before = fields.AwareDateTime(default_timezone=UTC, metadata={
        "description": "only jobs created before this time"})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 100))
    cursor = fields.String(validate=validate.Length(max=2000))


class JobListSchema(Schema):
    jobs = fields.List(fields.Nested(JobSchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})
