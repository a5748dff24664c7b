"""The three RPC flows between worker groups: await chain, detached chain and fan-out.

Each takes an optional `?id=`; without one it uses the flow's fixed id (the route's name), so
re-sending reconnects to the same run.
"""

import functools
from collections.abc import Callable

from flask_smorest import Blueprint
from marshmallow import RAISE, Schema

from async_api import contract, ids
from async_api.contract import DurableFunction
from async_api.resources import accepted, settings, start_job
from async_api.schemas import ErrorResponseSchema, OptionalIdQuerySchema, started_job_links
from async_api.schemas.flows import (
    AwaitChainSchema,
    DetachedChainSchema,
    DetachedJobSchema,
    FanOutSchema,
)
from async_api.schemas.jobs import JobSchema

blp = Blueprint("flows", __name__, description="Workflows that call other worker groups.")


def flow_route(
    path: str, body_schema: type[Schema], answer_schema: type[Schema] = JobSchema
) -> Callable[[Callable], Callable]:
    """What every flow route shares: POST, an optional ?id=, a body, 202 or 409."""
    decorators = [
        blp.route(path, methods=["POST"]),
        blp.arguments(OptionalIdQuerySchema(), location="query", unknown=RAISE),
        blp.arguments(body_schema()),
        blp.response(202, answer_schema),
        blp.doc(**started_job_links()),
        blp.alt_response(409, schema=ErrorResponseSchema, description="Id reused, other body."),
    ]

    def decorate(view: Callable) -> Callable:
        return functools.reduce(lambda wrapped, decorator: decorator(wrapped),
                                reversed(decorators), view)
    return decorate


def _new_job_id(query: dict, default_id: str) -> str:
    return ids.chosen(query.get("id", default_id), settings())


def _start(function: DurableFunction, job_id: str, args: list) -> tuple:
    return accepted(start_job(function, job_id, args))


@flow_route("/await-chain", AwaitChainSchema)
def await_chain(query: dict, body: dict) -> tuple:
    """`place_order` (group business) awaits `query_orders` (group db) and uses its answer."""
    return _start(contract.PLACE_ORDER, _new_job_id(query, "await-chain"),
                  [body["customer"], body["item"]])


@flow_route("/detached-chain", DetachedChainSchema, DetachedJobSchema)
def detached_chain(query: dict, body: dict) -> tuple:
    """`start_report` starts `build_report` (group db) and finishes without waiting for it."""
    job_id = _new_job_id(query, "detached-chain")
    child_id = contract.report_job_id(job_id)
    answer, status, headers = _start(contract.START_REPORT, job_id, [body["report"], child_id])
    return {**answer, "child_job_id": child_id}, status, headers


@flow_route("/fan-out-workflow", FanOutSchema)
def fan_out_workflow(query: dict, body: dict) -> tuple:
    """`fan_out_workflow` runs `count` squares at once on group worker and sums them."""
    return _start(contract.FAN_OUT_WORKFLOW, _new_job_id(query, "fan-out-workflow"),
                  [body["count"]])
