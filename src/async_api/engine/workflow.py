"""What the durable functions of the `workers` package yield, and the error they may see.

Each helper hides one SDK 0.4.10 call behind a name that says what it does to the workflow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from resonate.dataclasses import DurablePromise
from resonate.targets import poll

from async_api import logs
from async_api.engine.client import PROGRESS_STEP

if TYPE_CHECKING:
    from async_api.contract import DurableFunction

MAX_PROGRESS_MESSAGE = 200


class JobSettledElsewhere(Exception):
    """What a workflow sees for a promise that was canceled or timed out under it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ChildFailed(Exception):
    """What a workflow sees for an error of a function it called that its worker cannot rebuild
    (its class is not importable here, or not from what was stored): the class's qualified
    name (`type`, as stored), its message, and its attributes. Uncaught, it rejects the
    workflow as the original error would (sdk_fixes.StrictEncoder)."""

    def __init__(self, type: str, message: str, attributes: dict[str, Any]) -> None:
        super().__init__(message)
        self.type, self.message, self.attributes = type, message, attributes


def call(ctx: Any, function: DurableFunction, *args: Any) -> Any:
    """Yield this to run `function` on a worker of its group and wait for its result."""
    return ctx.rfc(function.name, *args).options(send_to=poll(function.group))


def start(ctx: Any, function: DurableFunction, *args: Any) -> Any:
    """Yield this to start `function` on its group without waiting; yield the handle later to
    await it."""
    return ctx.rfi(function.name, *args).options(send_to=poll(function.group))


def step(ctx: Any, func: Callable[..., Any], *args: Any) -> Any:
    """Yield this to run a checkpointed local step: once it completed, a replay skips it."""
    return ctx.lfc(func, *args)


def signal(ctx: Any, promise_id: str) -> Any:
    """Yield this to wait, durably and for as long as it takes, until someone settles the
    promise `promise_id` (e.g. a webhook); evaluates to the value it was resolved with."""
    return ctx.rfc(DurablePromise(id=promise_id, timeout=sys.maxsize))


def running_job_id() -> str:
    """In a step: the id of the job whose workflow runs it, which the step's thread is bound
    to (sdk_fixes.BindingProcessor). A retry is a job of its own, under another id than the
    first attempt (test_jobs.py::test_cancel_wins_over_a_running_job_and_a_retry_runs_it)."""
    job_id = logs.current_job_id()
    if job_id is None:
        raise RuntimeError("running_job_id() is for a step run by engine.step")
    return job_id


def sleep(ctx: Any, seconds: int) -> Any:
    """Yield this to sleep durably: a worker restarted mid-sleep wakes at the same time."""
    return ctx.sleep(seconds)


def progress(ctx: Any, fraction: float, message: str = "") -> Any:
    """Yield this to report how far the job has got (0 to 1, and a short message). Stored as a
    step, it shows in the job's views (percentComplete) and survives a worker crash; a replay
    does not report it again."""
    return ctx.lfc(_report_progress, fraction, message)


def _report_progress(ctx: Any, fraction: float, message: str) -> dict[str, Any]:
    return {"fraction": min(max(float(fraction), 0.0), 1.0),
            "message": str(message)[:MAX_PROGRESS_MESSAGE]}


def step_name(func: Callable[..., Any] | str) -> str:
    """What a step's promise is tagged with (engine.STEP_TAG): the function's name."""
    if func is _report_progress:
        return PROGRESS_STEP
    return func if isinstance(func, str) else getattr(func, "__name__", "step")
