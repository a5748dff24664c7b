"""The business functions: durable generators run by the workers, grouped by worker group.

Each implements one function of `async_api.contract` (`@implements`), which names it and says
which group runs it; GROUPS, what `python -m workers --group G` registers, is derived from that.
Every side effect runs inside a checkpointed step (`engine.step`) and writes one ledger row, so
a replay after a crash skips what already completed and the tests can count real executions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Generator
from typing import Any

from async_api import contract, engine, jobs
from async_api.contract import DurableFunction
from async_api.settings import Settings
from workers import ledger
from workers.errors import JobFailed

Workflow = Generator[Any, Any, Any]
DurableGenerator = Callable[..., Workflow]

_IMPLEMENTATIONS: dict[DurableFunction, DurableGenerator] = {}


def implements(function: DurableFunction) -> Callable[[DurableGenerator], DurableGenerator]:
    """Marks the decorated generator as the worker side of `function`.

    The engine registers a function under its Python name, so that name must be the contract's.
    """
    def register(implementation: DurableGenerator) -> DurableGenerator:
        if implementation.__name__ != function.name:
            raise ValueError(f"{implementation.__name__} would be registered under its own "
                             f"name, but the contract calls it {function.name!r}")
        _IMPLEMENTATIONS[function] = implementation
        return implementation
    return register


MAX_SLEEP_SECONDS = 3600
MAX_WORK_SECONDS = 60.0


def canonical(data: Any) -> str:
    """The one text form of a JSON value: ledger keys and results use it."""
    return json.dumps(data, sort_keys=True, separators=(", ", ": "))


# --- worker group "worker" ---------------------------------------------------------------------


@implements(contract.FOO)
def foo(ctx: Any, data: Any) -> Workflow:
    """The /begin job. Demo knobs in the body: "sleep": N waits N seconds durably first,
    "work": N blocks N seconds inside the checkpointed step (its worker holds the task
    meanwhile), "fail": "why" rejects the job with that reason."""
    options = data if isinstance(data, dict) else {}
    sleep = options.get("sleep")
    if isinstance(sleep, int | float) and sleep > 0:
        # capped: a huge value would overflow the engine's timestamps
        yield engine.sleep(ctx, int(min(sleep, MAX_SLEEP_SECONDS)))
    work = options.get("work")
    work_seconds = float(work) if isinstance(work, int | float) else 0.0
    yield engine.step(ctx, foo_effect, canonical(data), min(work_seconds, MAX_WORK_SECONDS))
    if "fail" in options:
        raise JobFailed(str(options["fail"]))
    return {"result": f"Processed: {canonical(data)}", "timestamp": int(time.time())}


UNAVAILABLE = "unavailable"  # an item of this name fails validation (demo knob)


def step_seconds() -> float:
    """STEP_PAUSE_SECONDS slows every business step down, so fault tests can act mid-step
    (the ledger then marks "<step>:started" when a step begins)."""
    return _settings().step_pause_seconds


@functools.cache
def _settings() -> Settings:
    return Settings.from_env()


@functools.cache
def _engine() -> engine.Engine:
    """A client of the promise store, to look at the job a step belongs to."""
    return engine.Engine(_settings().resonate_url, _settings().engine_timeout_seconds)


def foo_effect(ctx: Any, key: str, work_seconds: float = 0) -> None:
    """What `foo` does to the world: here, one ledger row."""
    ledger.record(ctx, "foo", key, max(work_seconds, step_seconds()))


def order_step(ctx: Any, step: str, order_id: str, items: list[str]) -> dict[str, Any]:
    """One business step of an order.

    A step raises only for transient trouble (the SDK retries it); a business "no" is a value.
    A job canceled or timed out meanwhile stops before its next effect: its worker learns of
    it only when it next renews its claim, and its retry must not find the effect done twice.
    """
    job = _engine().get(engine.running_job_id())  # this attempt's job
    if not job.pending:
        return {"step": step, "ok": False, "why": f"the job is {job.state}"}
    if step == "validate" and UNAVAILABLE in items:
        return {"step": step, "ok": False, "why": f"an item is {UNAVAILABLE}"}
    ledger.record(ctx, step, order_id, step_seconds())  # only a completed step leaves a row
    return {"step": step, "ok": True}


@implements(contract.PROCESS_ORDER)
def process_order(ctx: Any, order_id: str, items: list[str]) -> Workflow:
    """Validate, charge, ship: each a checkpoint, so a survivor resumes after the last one,
    and each reports the progress it made."""
    steps = ("validate", "charge", "ship")
    for done, step in enumerate(steps, start=1):
        outcome = yield engine.step(ctx, order_step, step, order_id, items)
        if not outcome["ok"]:
            raise JobFailed(f"{step} failed: {outcome['why']}")
        yield engine.progress(ctx, done / len(steps), f"{step} done")
    return {"order_id": order_id, "items": items, "status": "shipped", "steps": list(steps)}


@implements(contract.APPROVE_THEN_SHIP)
def approve_then_ship(ctx: Any, order_id: str) -> Workflow:
    """Waits, durably and for as long as it takes, for the approval webhook, then ships."""
    decision = yield engine.signal(ctx, contract.approval_id(order_id))
    if not (isinstance(decision, dict) and decision.get("approved") is True):
        return {"order_id": order_id, "status": "rejected"}
    outcome = yield engine.step(ctx, order_step, "ship", order_id, [])
    if not outcome["ok"]:
        raise JobFailed(f"ship failed: {outcome['why']}")
    return {"order_id": order_id, "status": "shipped"}


def start_report_job(ctx: Any, child_id: str, report: str) -> str:
    """A step that starts build_report as a job of its own, as the gateway would: nobody
    awaits it. (A child started with `engine.start` would hold its parent open until it
    finished.) It belongs to whoever owns its parent."""
    parent = _engine().get(contract.report_parent_id(child_id))
    jobs.start(_engine(), _settings(), contract.BUILD_REPORT, child_id, [report],
               jobs.carried_tags(parent))
    return child_id


@implements(contract.START_REPORT)
def start_report(ctx: Any, report: str, child_id: str) -> Workflow:
    """Detached chain: starts build_report and returns without waiting for it."""
    yield engine.step(ctx, start_report_job, child_id, report)
    return {"started": child_id, "report": report}


@implements(contract.FAN_OUT_WORKFLOW)
def fan_out_workflow(ctx: Any, count: int) -> Workflow:
    """Fan-out: starts `count` squares at once, awaits them all, combines; reports progress as
    the squares come in."""
    handles = []
    for index in range(count):
        handles.append((yield engine.start(ctx, contract.SQUARE, index)))
    results = []
    for handle in handles:
        results.append((yield handle))
        yield engine.progress(ctx, len(results) / count, f"{len(results)} of {count} squares")
    return {"results": results, "total": sum(results)}


@implements(contract.SQUARE)
def square(ctx: Any, number: int) -> Workflow:
    value = yield engine.step(ctx, _square_step, number)
    return value


def _square_step(ctx: Any, number: int) -> int:
    ledger.record(ctx, "square", str(number), step_seconds())
    return number * number


# --- worker group "pricing" --------------------------------------------------------------------


def unit_price_cents(sku: str) -> int:
    return 100 + int(hashlib.sha256(sku.encode()).hexdigest(), 16) % 900


@implements(contract.COMPUTE_QUOTE)
def compute_quote(ctx: Any, sku: str, qty: int) -> Workflow:
    """Prices an order. A sku starting with "slow-" takes 5 s (to show the 504 path)."""
    if sku.startswith("slow-"):
        yield engine.sleep(ctx, 5)
    yield engine.step(ctx, ledger.record, "quote", f"{sku}:{qty}")
    return {"sku": sku, "qty": qty, "price": unit_price_cents(sku) * qty / 100}


# --- worker groups "business" and "db": an await chain across groups -------------------------


@implements(contract.PLACE_ORDER)
def place_order(ctx: Any, customer: str, item: str) -> Workflow:
    """Await chain: asks query_orders (another group) for the customer's history, uses it."""
    history = yield engine.call(ctx, contract.QUERY_ORDERS, customer)
    yield engine.step(ctx, ledger.record, "place_order", f"{customer}:{item}")
    return {"customer": customer, "item": item, "previous_orders": len(history["orders"]),
            "placed": True}


@implements(contract.QUERY_ORDERS)
def query_orders(ctx: Any, customer: str) -> Workflow:
    orders = yield engine.step(ctx, _orders_of, customer)
    return {"customer": customer, "orders": orders}


def _orders_of(ctx: Any, customer: str) -> list[str]:
    """Stands in for a database query."""
    ledger.record(ctx, "query_orders", customer, step_seconds())
    return [f"{customer}-order-{n}" for n in range(len(customer) % 4)]


@implements(contract.BUILD_REPORT)
def build_report(ctx: Any, report: str) -> Workflow:
    """The detached child: slower than its parent on purpose."""
    yield engine.sleep(ctx, 1)
    yield engine.step(ctx, ledger.record, "build_report", report)
    return {"report": report, "rows": len(report) * 10}


def _by_group() -> dict[str, list[DurableGenerator]]:
    """The implementations each group registers. A contract function without one would strand
    its jobs, so the workers refuse to start instead."""
    missing = [function.name for function in contract.FUNCTIONS
               if function not in _IMPLEMENTATIONS]
    if missing:
        raise RuntimeError(f"no implementation of {', '.join(missing)}")
    return {group: [implementation for function, implementation in _IMPLEMENTATIONS.items()
                    if function.group == group] for group in contract.GROUPS}


# Which functions each worker group serves: `python -m workers --group G`.
GROUPS = _by_group()
