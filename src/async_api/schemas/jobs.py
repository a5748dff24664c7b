"""Schemas of the job API: order submissions, job views, listings."""

from datetime import UTC
from typing import Any

from marshmallow import Schema, fields, validate

from async_api.contract import FUNCTIONS
from async_api.jobs import STATE_ALIASES, STATES, WAITING_FOR_APPROVAL
from async_api.schemas import NEW_ID_CHARACTERS, QueryInteger, QuerySchema, state_field

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
    cancel = fields.String(metadata={"description": "absent when the caller may not cancel "
                                     "the job (one nobody owns, to a principal that is no admin)"})
    retry = fields.String(metadata={"description": "absent when the caller may not retry "
                                    "the job (as for cancel)"})
    steps = fields.String(required=True)
    status_monitor = fields.String(required=True)


class ProgressSchema(Schema):
    fraction = fields.Float(required=True, metadata={"example": 0.5})
    message = fields.String(required=True, metadata={"example": "charge done"})
    reported_at = fields.String(required=True, allow_none=True)


def _moment(description: str) -> fields.String:
    """A time in a job view: RFC 3339 UTC with milliseconds, from the engine's clock."""
    return fields.String(required=True, allow_none=True, metadata={
        "description": description, "example": "2026-11-25T19:40:03.123Z"})


class JobSchema(Schema):
    job_id = fields.String(required=True, metadata={"example": "order:A1"})
    status = state_field(JOB_STATUSES, description=f"{WAITING_FOR_APPROVAL}: pending, and its "
                                                   "workflow waits for its approval webhook")
    function = fields.String(required=True, allow_none=True,
                             metadata={"example": "process_order"})
    group = fields.String(required=True, allow_none=True,
                          metadata={"description": "the worker group that runs it"})
    created_at = _moment("when the job was started")
    updated_at = _moment("when it last changed: settled, reported progress, or started")
    completed_at = _moment("when it settled; null while pending")
    attempt = fields.Integer(required=True, metadata={"description": "1, or 2, 3, ... for "
                                                                     "retries"})
    retry_of = fields.String(metadata={"description": "the job this attempt retries"})
    first_attempt = fields.String(metadata={"description": "the job's first attempt"})
    retried_by = fields.String(allow_none=True, metadata={
        "description": "GET /jobs/{id} of a finished job: the attempt that retried it"})
    progress = fields.Nested(ProgressSchema, metadata={
        "description": "the last progress its workflow reported, if any"})
    args = fields.Raw(metadata={"description": "GET /jobs/{id}: the job's arguments"})
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
    state = fields.List(StateFilter(validate=validate.OneOf(JOB_STATUSES)),
                        validate=validate.Length(min=1), metadata={
                            "description": "job states, repeatable: jobs in any of them. "
                                           f"{WAITING_FOR_APPROVAL}: the pending jobs that "
                                           "wait for their approval, shown so; pending alone "
                                           "shows every pending job as pending"})
    function = fields.String(validate=validate.OneOf([f.name for f in FUNCTIONS]), metadata={
        "description": "only jobs running this durable function"})
    created_after = fields.AwareDateTime(default_timezone=UTC, metadata={
        "description": "only jobs created at or after this time (RFC 3339; UTC if no offset)"})
    created_before = fields.AwareDateTime(default_timezone=UTC, metadata={
        "description": "only jobs created before this time"})
    limit = QueryInteger(load_default=50, validate=validate.Range(1, 100))
    cursor = fields.String(validate=validate.Length(max=2000))


class JobListSchema(Schema):
    jobs = fields.List(fields.Nested(JobSchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={"description": "null on the last page"})


class StepSchema(Schema):
    id = fields.String(required=True, metadata={"example": "order:A1.1"})
    kind = fields.String(required=True, validate=validate.OneOf(
        ("step", "call", "sleep", "progress", "signal")), metadata={
        "description": "step: a checkpointed local step; call: a durable function on a worker; "
                       "sleep: a durable sleep; progress: a progress report; signal: the "
                       "approval it awaits"})
    function = fields.String(required=True, allow_none=True)
    status = state_field(STATES)
    created_at = _moment("when the step began")
    completed_at = _moment("when it ended; null while under way")
    progress = fields.Raw(metadata={"description": "a progress report's fraction and message"})


class JobStepsSchema(Schema):
    job_id = fields.String(required=True)
    steps = fields.List(fields.Nested(StepSchema), required=True)
