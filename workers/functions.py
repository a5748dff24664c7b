"""The business functions: durable generators run by the workers, grouped by worker group."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from typing import Any

from async_api import engine
from workers import ledger
from workers.errors import JobFailed


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(", ", ": "))


def foo(ctx: Any, data: Any) -> Generator[Any, Any, dict[str, Any]]:
    """The /begin job. Demo knobs in the body: "sleep": N waits N seconds durably first,
    "work": N blocks N seconds inside the checkpointed step (its worker holds the task
    meanwhile), "fail": "why" rejects the job with that reason."""
    options = data if isinstance(data, dict) else {}
    if options.get("sleep"):
        yield engine.sleep(ctx, int(options["sleep"]))
    work = options.get("work")
    work_seconds = float(work) if isinstance(work, int | float) else 0.0
    yield engine.step(ctx, ledger.record, "foo", canonical(data), min(work_seconds, 60.0))
    if "fail" in options:
        raise JobFailed(str(options["fail"]))
    return {"result": f"Processed: {canonical(data)}", "timestamp": int(time.time())}


# Which functions each worker group serves: `python -m workers --group G`.
GROUPS: dict[str, list[Callable[..., Any]]] = {
    "worker": [foo],
}
