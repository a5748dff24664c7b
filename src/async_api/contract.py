"""What the gateway and the workers agree on: each durable function's name, the worker group that
runs it, and how a job's id is formed from a request.

Both sides import this module, and it imports nothing: a name, a group or an id's shape is
written here once. The gateway starts these functions on these groups; the workers register
exactly these functions (`workers.functions.GROUPS` is derived from this module and checked
against it).
"""

from __future__ import annotations

from dataclasses import dataclass

# The worker groups: `python -m workers --group G` serves one.
WORKER = "worker"
PRICING = "pricing"
BUSINESS = "business"
DB = "db"
GROUPS = (WORKER, PRICING, BUSINESS, DB)


@dataclass(frozen=True)
class DurableFunction:
    """A function that a worker of `group` runs when a promise names it by `name`."""

    name: str
    group: str


FOO = DurableFunction("foo", WORKER)
PROCESS_ORDER = DurableFunction("process_order", WORKER)
APPROVE_THEN_SHIP = DurableFunction("approve_then_ship", WORKER)
START_REPORT = DurableFunction("start_report", WORKER)
FAN_OUT_WORKFLOW = DurableFunction("fan_out_workflow", WORKER)
SQUARE = DurableFunction("square", WORKER)
COMPUTE_QUOTE = DurableFunction("compute_quote", PRICING)
PLACE_ORDER = DurableFunction("place_order", BUSINESS)
QUERY_ORDERS = DurableFunction("query_orders", DB)
BUILD_REPORT = DurableFunction("build_report", DB)

FUNCTIONS = (FOO, PROCESS_ORDER, APPROVE_THEN_SHIP, START_REPORT, FAN_OUT_WORKFLOW, SQUARE,
             COMPUTE_QUOTE, PLACE_ORDER, QUERY_ORDERS, BUILD_REPORT)
BY_NAME = {function.name: function for function in FUNCTIONS}


# The service's own ids hold ":", which client ids may not (see ids.py): they never collide.


def order_job_id(order_id: str) -> str:
    """An order's job (POST /jobs, approve-and-ship): one per order, so a retry reconnects."""
    return f"order:{order_id}"


def approval_id(order_id: str) -> str:
    """The promise an order's `approve_then_ship` waits on and its approval webhook settles."""
    return f"approval:{order_id}"


def quote_job_id(sku: str, qty: int) -> str:
    """A quote's job: the same request later finds the stored price instead of a new run."""
    return f"quote:{sku}:{qty}"


REPORT_SUFFIX = ":report"


def report_job_id(parent_job_id: str) -> str:
    """The job `start_report` starts and leaves running: named after its parent, pollable."""
    return f"{parent_job_id}{REPORT_SUFFIX}"


def report_parent_id(report_job_id: str) -> str:
    """The job that started a report job (its owner is the report's)."""
    return report_job_id.removesuffix(REPORT_SUFFIX)


def retry_job_id(first_attempt_id: str, attempt: int) -> str:
    """Attempt 2, 3, ... of a job retried over HTTP (POST /jobs/{id}/retry): one id per attempt,
    so a repeated retry of the same attempt reconnects instead of running again."""
    return f"{first_attempt_id}:attempt-{attempt}"
