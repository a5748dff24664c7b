"""Marshmallow schemas, one module per resource; they also feed the OpenAPI document."""

from collections.abc import Sequence

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from async_api.ids import ID_REGEX, NEW_ID_PATTERN, NEW_ID_REGEX, NEW_ID_RULE
from async_api.settings import Settings


class _IdCharacters(validate.Regexp):
    """Documents `^...$` (JSON Schema's reading), checks with fullmatch: with re.match, `$`
    would let a trailing newline through."""

    def __call__(self, value: str) -> str:
        if not NEW_ID_PATTERN.fullmatch(value):
            raise ValidationError(self._format_error(value))
        return value


# For fields that become part of a new job's id (order_id, sku).
NEW_ID_CHARACTERS = _IdCharacters(f"^{NEW_ID_REGEX}$", error=f"Use {NEW_ID_RULE}.")
# What ids.checked() and ids.chosen() enforce, documented so that clients (and schemathesis)
# know it.
ID_RULES = {"pattern": f"^{ID_REGEX}$", "minLength": 1, "maxLength": Settings.max_id_length}
NEW_ID_RULES = {**ID_RULES, "pattern": f"^{NEW_ID_REGEX}$"}


class QuerySchema(Schema):
    """Query strings ignore parameters they do not know (cache busters, tracing tags)."""

    class Meta:
        unknown = EXCLUDE


class OptionalIdQuerySchema(QuerySchema):
    id = fields.String(metadata={"description": "Client-chosen job id; re-sending it reconnects "
                                                "to the same run.", **NEW_ID_RULES})


def state_field(states: Sequence[str], **metadata: str) -> fields.String:
    """A job's `status` in an answer: the OpenAPI document lists the words it can be (enum)."""
    return fields.String(required=True, validate=validate.OneOf(states), metadata=metadata)


class ApiErrorSchema(Schema):
    code = fields.String(required=True, metadata={"example": "not_found"})
    message = fields.String(required=True)
    details = fields.Raw()


class ErrorResponseSchema(Schema):
    error = fields.Nested(ApiErrorSchema, required=True)
