"""Marshmallow schemas, one module per resource; they also feed the OpenAPI document."""

import re
from collections.abc import Sequence
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from async_api.ids import ID_REGEX, NEW_ID_PATTERN, NEW_ID_REGEX, NEW_ID_RULE, lookup_length
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
ID_RULES = {"pattern": f"^{ID_REGEX}$", "minLength": 1,
            "maxLength": lookup_length(Settings.max_id_length)}
NEW_ID_RULES = {**ID_RULES, "pattern": f"^{NEW_ID_REGEX}$", "maxLength": Settings.max_id_length}


class QuerySchema(Schema):
    """Query strings ignore parameters they do not know (cache busters, tracing tags)."""

    class Meta:
        unknown = EXCLUDE


class OptionalIdQuerySchema(QuerySchema):
    """The query of a request that starts a job, read with `unknown=RAISE` (the routes say
    so: webargs reads a query's unknown parameters as its own default says): a misspelt id
    (`ID=`, `job_id=`) would otherwise start a new job at every resend."""

    id = fields.String(metadata={"description": "Client-chosen job id; re-sending it reconnects "
                                                "to the same run.", **NEW_ID_RULES})


class _Plain:
    """A number in a query string as JSON writes it (ASCII digits): Python's int() and float(),
    under marshmallow's fields, also read `1_0`, full-width digits and ` 5 `."""

    plain: re.Pattern[str]

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and not self.plain.fullmatch(value):
            raise self.make_error("invalid")  # type: ignore[attr-defined]
        return super()._deserialize(value, attr, data, **kwargs)  # type: ignore[misc]


class QueryInteger(_Plain, fields.Integer):
    plain = re.compile(r"-?[0-9]+")


class QueryFloat(_Plain, fields.Float):
    plain = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def state_field(states: Sequence[str], **metadata: str) -> fields.String:
    """A job's `status` in an answer: the OpenAPI document lists the words it can be (enum)."""
    return fields.String(required=True, validate=validate.OneOf(states), metadata=metadata)


class ApiErrorSchema(Schema):
    code = fields.String(required=True, metadata={"example": "not_found"})
    message = fields.String(required=True)
    details = fields.Raw()


class ErrorResponseSchema(Schema):
    error = fields.Nested(ApiErrorSchema, required=True)


def _operation_ref(path: str, method: str) -> str:
    """An OpenAPI operationRef: a JSON pointer into this document's paths."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def started_job_links(id_field: str = "job_id") -> dict:
    """`blp.doc(**started_job_links())` on a route that answers 202 with a job: OpenAPI links
    from the id in its body to the routes that take it (clients and schemathesis' stateful
    tests follow them)."""
    job_id = {"job_id": f"$response.body#/{id_field}"}
    targets = {
        "GetJob": ("/jobs/{job_id}", "get"),
        "GetJobSteps": ("/jobs/{job_id}/steps", "get"),
        "GetStatusMonitor": ("/jobs/{job_id}/operation", "get"),
        "GetOperation": ("/v1/operations/{job_id}", "get"),
        "CancelJob": ("/jobs/{job_id}/cancel", "post"),
        "RetryJob": ("/jobs/{job_id}/retry", "post"),
    }
    links = {name: {"operationRef": _operation_ref(path, method), "parameters": job_id}
             for name, (path, method) in targets.items()}
    if id_field == "promise":  # /begin: the seed contract's /wait?id=
        links["Wait"] = {"operationRef": _operation_ref("/wait", "get"),
                         "parameters": {"query.id": f"$response.body#/{id_field}"}}
    return {"responses": {202: {"links": links}}}  # an int, as blp.response keys it
