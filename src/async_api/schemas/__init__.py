"""Marshmallow schemas, one module per resource; they also feed the OpenAPI document."""

from marshmallow import EXCLUDE, Schema, fields, validate

from async_api.ids import ID_PATTERN, ID_RULE

# For fields that become part of a job id.
ID_CHARACTERS = validate.Regexp(ID_PATTERN, error=f"Use {ID_RULE}.")


class QuerySchema(Schema):
    """Query strings ignore parameters they do not know (cache busters, tracing tags)."""

    class Meta:
        unknown = EXCLUDE


class OptionalIdQuerySchema(QuerySchema):
    id = fields.String(metadata={"description": "Client-chosen job id; re-sending it reconnects "
                                                "to the same run."})


class ApiErrorSchema(Schema):
    code = fields.String(required=True, metadata={"example": "not_found"})
    message = fields.String(required=True)
    details = fields.Raw()


class ErrorResponseSchema(Schema):
    error = fields.Nested(ApiErrorSchema, required=True)
