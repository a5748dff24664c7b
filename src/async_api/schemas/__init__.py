"""Marshmallow schemas, one module per resource; they also feed the OpenAPI document."""

from marshmallow import EXCLUDE, Schema, fields


class QuerySchema(Schema):
    """Query strings ignore parameters they do not know (cache busters, tracing tags)."""

    class Meta:
        unknown = EXCLUDE


class ApiErrorSchema(Schema):
    code = fields.String(required=True, metadata={"example": "not_found"})
    message = fields.String(required=True)
    details = fields.Raw()


class ErrorResponseSchema(Schema):
    error = fields.Nested(ApiErrorSchema, required=True)
