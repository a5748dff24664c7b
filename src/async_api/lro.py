"""A job in the words of the two long-running-operation conventions clients already speak:
Microsoft's REST API guidelines (a status monitor) and Google's AIP-151 (an `Operation`).

Pure: no Flask, no engine calls. The routes (resources/status_monitor.py,
resources/operations.py) fetch the promise and build URLs; this module only translates the
engine's job states (jobs.STATES), so both conventions say the same thing about a job.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from async_api.engine import (
    CANCELED,
    PENDING,
    REJECTED,
    RESOLVED,
    TIMEDOUT,
    Progress,
    Promise,
    message_of,
)

# Microsoft REST API guidelines: the status monitor's `status`. A pending job may be queued or
# running; the engine does not say which without more reads, so it is always `Running`.
NOT_STARTED = "NotStarted"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
CANCELED_STATUS = "Canceled"
LRO_STATUSES = (NOT_STARTED, RUNNING, SUCCEEDED, FAILED, CANCELED_STATUS)
LRO_STATUS = {PENDING: RUNNING, RESOLVED: SUCCEEDED, REJECTED: FAILED, CANCELED: CANCELED_STATUS,
              TIMEDOUT: FAILED}

# google.rpc.Code of an AIP-151 operation's `error`, per finished job state.
RPC_CANCELLED = 1
RPC_UNKNOWN = 2
RPC_DEADLINE_EXCEEDED = 4
RPC_CODE = {REJECTED: RPC_UNKNOWN, CANCELED: RPC_CANCELLED, TIMEDOUT: RPC_DEADLINE_EXCEEDED}

# AIP-151 resource names are "operations/{job id}".
OPERATIONS = "operations"
ANY_STRUCT = "type.googleapis.com/google.protobuf.Struct"
ANY_VALUE = "type.googleapis.com/google.protobuf.Value"

# RFC 7240 `Prefer: wait=S` (other preferences in the header are ignored).
_PREFER_WAIT = re.compile(r"(?:^|[,;])\s*wait\s*=\s*\"?(\d+(?:\.\d+)?)\"?\s*(?=$|[,;])", re.I)
# A google.protobuf.Duration in JSON: "5s", "1.5s".
DURATION_REGEX = r"^[0-9]+(?:\.[0-9]+)?s$"
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)s")


def timestamp(ms: int | None) -> str | None:
    """RFC 3339 UTC with milliseconds, from the server's ms since the epoch."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def last_updated(promise: Promise, progress: Progress | None = None) -> int | None:
    """When the job last changed: settled, else its last progress report, else created."""
    moments = [promise.created_on, promise.completed_on, progress and progress.reported_on]
    return max((m for m in moments if m is not None), default=None)


def percent(progress: Progress) -> int:
    return round(progress.fraction * 100)


def error_message(promise: Promise) -> str:
    """A one-line reason for a finished, unsuccessful job."""
    value = promise.value  # a canceled or timed-out job's always has a message (engine)
    return message_of(value) or ("The job failed." if value is None else str(value))


def status_monitor(promise: Promise, progress: Progress | None = None) -> dict[str, Any]:
    """The Microsoft status monitor body: status, times, progress, and the result or error
    once final."""
    answer: dict[str, Any] = {
        "id": promise.id,
        "status": LRO_STATUS[promise.state],
        "createdDateTime": timestamp(promise.created_on),
        "lastUpdatedDateTime": timestamp(last_updated(promise, progress)),
    }
    if progress is not None:
        answer["percentComplete"] = percent(progress)
    if promise.state == RESOLVED:
        answer["result"] = promise.value
    elif not promise.pending:
        answer["error"] = {"code": promise.state, "message": error_message(promise)}
    return answer


def operation_name(job_id: str) -> str:
    return f"{OPERATIONS}/{job_id}"


def operation(promise: Promise, progress: Progress | None = None) -> dict[str, Any]:
    """A google.longrunning.Operation in its JSON form; only fields the proto has, so that
    clients that parse strictly (google-api-core) accept it."""
    metadata: dict[str, Any] = {"jobId": promise.id, "state": promise.state,
                                "function": promise.function,
                                "createTime": timestamp(promise.created_on),
                                "updateTime": timestamp(last_updated(promise, progress))}
    if promise.completed_on is not None:
        metadata["endTime"] = timestamp(promise.completed_on)
    if progress is not None:
        metadata["progressPercent"] = percent(progress)
        metadata["progressMessage"] = progress.message
    answer: dict[str, Any] = {
        "name": operation_name(promise.id),
        "metadata": {"@type": ANY_STRUCT, "value": metadata},
        "done": not promise.pending,
    }
    if promise.state == RESOLVED:
        answer["response"] = {"@type": ANY_VALUE, "value": promise.value}
    elif not promise.pending:
        answer["error"] = {"code": RPC_CODE[promise.state], "message": error_message(promise)}
    return answer


def preferred_wait(prefer: str | None) -> float | None:
    """Seconds asked for by RFC 7240 `Prefer: wait=S`, or None when the header asks none."""
    match = _PREFER_WAIT.search(prefer or "")
    return float(match.group(1)) if match else None


def duration_seconds(duration: str) -> float | None:
    """A google.protobuf.Duration JSON string ("5s", "0.5s") in seconds; None if malformed."""
    match = _DURATION.fullmatch(duration.strip())
    return float(match.group(1)) if match else None


class FilterError(ValueError):
    """A list filter this service cannot apply."""


# The AIP-160 filters ListOperations reads: `done = true|false` and `metadata.state = "<job
# state>"`, joined by AND (spaces only, so that the OpenAPI pattern and Python agree).
_STATE_WORDS = "|".join((PENDING, RESOLVED, REJECTED, CANCELED, TIMEDOUT))
_TERM = rf'(?:done *= *(?:true|false)|metadata\.state *= *"?(?:{_STATE_WORDS})"?)'
FILTER_REGEX = rf"^ *(?:{_TERM}(?: +AND +{_TERM})*)? *$"
_FILTER = re.compile(FILTER_REGEX)
_FILTER_TERM = re.compile(r'(done|metadata\.state) *= *"?([a-z]+)"?')


def parse_filter(text: str, states: tuple[str, ...]) -> frozenset[str]:
    """The job states a ListOperations filter (FILTER_REGEX) selects; an empty filter: all."""
    if not _FILTER.fullmatch(text):
        raise FilterError('Filter by done = true|false or metadata.state = "<job state>", '
                          "joined by AND.")
    selected = frozenset(states)
    for key, value in _FILTER_TERM.findall(text):
        if key == "done":
            selected &= {s for s in states if (s != PENDING) == (value == "true")}
        else:
            selected &= {value}
    return selected
