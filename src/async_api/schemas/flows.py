"""Schemas of the three RPC flows: await chain, detached chain, fan-out."""

from marshmallow import Schema, fields, validate

from async_api.schemas.jobs import JobSchema

NAME = validate.Length(1, 100)


class AwaitChainSchema(Schema):
    customer = fields.String(load_default="alice", validate=NAME)
    item = fields.String(load_default="book", validate=NAME)


class DetachedChainSchema(Schema):
    report = fields.String(load_default="daily", validate=NAME)


class FanOutSchema(Schema):
    count = fields.Integer(load_default=3, strict=True, validate=validate.Range(1, 20))


class DetachedJobSchema(JobSchema):
    child_job_id = fields.String(required=True, metadata={
        "description": "the detached job; it runs on after its parent is done"})
