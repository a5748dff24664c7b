"""What the durable functions of the `workers` package yield, and the error they may see.

Each helper hides one SDK 0.4.10 call behind a name that says what it does to the workflow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from resonate.dataclasses import DurablePromise
from resonate.targets import poll

if TYPE_CHECKING:
    from async_api.contract import DurableFunction


class JobSettledElsewhere(Exception):
    """What a workflow sees for a promise that was canceled or timed out under it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


def sleep(ctx: Any, seconds: int) -> Any:
    """Yield this to sleep durably: a worker restarted mid-sleep wakes at the same time."""
    return ctx.sleep(seconds)
