"""What the durable functions of the `workers` package yield, and the error they may see.

Each helper hides one SDK 0.4.10 call behind a name that says what it does to the workflow.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from resonate.dataclasses import DurablePromise
from resonate.targets import poll


class JobSettledElsewhere(Exception):
    """What a workflow sees for a promise that was canceled or timed out under it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def call(ctx: Any, group: str, func: str, *args: Any, promise_id: str | None = None) -> Any:
    """Yield this to run `func` on a worker of `group` and wait for its result (await chain)."""
    return ctx.rfc(func, *args).options(id=promise_id, send_to=poll(group))


def start(ctx: Any, group: str, func: str, *args: Any, promise_id: str | None = None) -> Any:
    """Yield this to start `func` on `group` without waiting; yield the handle later to await."""
    return ctx.rfi(func, *args).options(id=promise_id, send_to=poll(group))


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
