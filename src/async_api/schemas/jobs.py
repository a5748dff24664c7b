"""Schemas of the job API: order submissions, job views, listings."""

from marshmallow import Schema, fields, validate

from async_api.jobs import STATUS, WAITING_FOR_APPROVAL
from async_api.schemas import NEW_ID_CHARACTERS, QuerySchema


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
    status = fields.String(
        required=True,
        validate=validate.OneOf([*STATUS.values(), WAITING_FOR_APPROVAL]),
        metadata={"description": "running, waiting_for_approval, done, failed, cancelled "
                                 "or timed_out"},
    )
    links = fields.Nested(JobLinksSchema, required=True)
    result = fields.Raw(allow_none=True, metadata={"description": "when done"})
    reason = fields.Raw(allow_none=True, metadata={"description": "when failed or cancelled"})
    waiting_for = fields.String(metadata={"description": "the promise a waiting job awaits"})


class JobListQuerySchema(QuerySchema):
    state = fields.String(validate=validate.OneOf(list(STATUS.values())))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 100))
    cursor = fields.String(validate=validate.Length(max=2000))


class JobListSchema(Schema):
    jobs = fields.List(fields.Nested(JobSchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})
