"""The engine layer: the only code that imports the Resonate SDK (resonate-sdk 0.4.10, server
v0.7.0). Moving to another engine version touches this package and nothing else.

* `client`: the promise-store client the gateway uses (`Engine`), and the errors it raises.
* `workflow`: what durable functions yield (`call`, `start`, `step`, `signal`, `sleep`,
  `progress`).
* `runtime`: the worker runtime (`run_worker`), with claims as leases (`leases`).
* `sdk_fixes`: fixes to the SDK's internals, each with the reason it exists and its test.

No Flask here: workers import this package without the gateway.
"""

from async_api.engine.client import (
    CANCELED,
    INVOKE_TAG,
    JOB_TAG,
    PENDING,
    PROGRESS_STEP,
    REJECTED,
    RESERVED_KEY,
    RESOLVED,
    SLEEP_TAG,
    STEP_TAG,
    TIMEDOUT,
    TRACEPARENT_TAG,
    Engine,
    EngineBusy,
    EngineError,
    EngineRejected,
    EngineUnavailable,
    Progress,
    Promise,
    PromiseAlreadySettled,
    PromiseConflict,
    PromiseNotFound,
    ReservedKey,
    check_value,
    job_tags,
    message_of,
)
from async_api.engine.runtime import Worker, run_worker
from async_api.engine.workflow import (
    ChildFailed,
    JobSettledElsewhere,
    call,
    progress,
    running_job_id,
    signal,
    sleep,
    start,
    step,
)

__all__ = [
    "CANCELED", "INVOKE_TAG", "JOB_TAG", "PENDING", "PROGRESS_STEP", "REJECTED", "RESERVED_KEY",
    "RESOLVED", "SLEEP_TAG", "STEP_TAG", "TIMEDOUT", "TRACEPARENT_TAG", "ChildFailed", "Engine",
    "EngineBusy", "EngineError", "EngineRejected", "EngineUnavailable", "JobSettledElsewhere",
    "Progress", "Promise", "PromiseAlreadySettled", "PromiseConflict", "PromiseNotFound",
    "ReservedKey", "Worker", "call", "check_value", "job_tags", "message_of", "progress",
    "run_worker", "running_job_id", "signal", "sleep", "start", "step",
]
