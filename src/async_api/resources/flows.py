"""The three RPC flows between worker groups: await chain, detached chain and fan-out.

Each takes an optional `?id=`; without one it uses the flow's fixed id (the route's name), so
re-sending reconnects to the same run.
"""

from flask_smorest import Blueprint

from async_api import ids, jobs
from async_api.resources import engine, settings
from async_api.schemas import ErrorResponseSchema, OptionalIdQuerySchema
from async_api.schemas.flows import (
    AwaitChainSchema,
    DetachedChainSchema,
    DetachedJobSchema,
    FanOutSchema,
)
from async_api.schemas.jobs import JobSchema

blp = Blueprint("flows", __name__, description="Workflows that call other worker groups.")


def _start(query: dict, default_id: str, func: str, args: list, group: str) -> tuple:
    job_id = ids.checked(query.get("id", default_id), settings())
    return jobs.start(engine(), settings(), job_id, func, args, group=group)


@blp.route("/await-chain", methods=["POST"])
@blp.arguments(OptionalIdQuerySchema, location="query")
@blp.arguments(AwaitChainSchema)
@blp.response(202, JobSchema)
@blp.alt_response(409, schema=ErrorResponseSchema, description="Id reused with another body.")
def await_chain(query: dict, body: dict) -> tuple:
    """`place_order` (group business) awaits `query_orders` (group db) and uses its answer."""
    return _start(query, "await-chain", "place_order", [body["customer"], body["item"]],
                  "business")


@blp.route("/detached-chain", methods=["POST"])
@blp.arguments(OptionalIdQuerySchema, location="query")
@blp.arguments(DetachedChainSchema)
@blp.response(202, DetachedJobSchema)
@blp.alt_response(409, schema=ErrorResponseSchema, description="Id reused with another body.")
def detached_chain(query: dict, body: dict) -> tuple:
    """`start_report` starts `build_report` (group db) and finishes without waiting for it."""
    job_id = ids.checked(query.get("id", "detached-chain"), settings())
    child_id = f"{job_id}:report"
    answer, status, headers = _start({"id": job_id}, job_id, "start_report",
                                     [body["report"], child_id], "worker")
    return {**answer, "child_job_id": child_id}, status, headers


@blp.route("/fan-out-workflow", methods=["POST"])
@blp.arguments(OptionalIdQuerySchema, location="query")
@blp.arguments(FanOutSchema)
@blp.response(202, JobSchema)
@blp.alt_response(409, schema=ErrorResponseSchema, description="Id reused with another body.")
def fan_out_workflow(query: dict, body: dict) -> tuple:
    """`fan_out_workflow` runs `count` squares at once on group worker and sums them."""
    return _start(query, "fan-out-workflow", "fan_out_workflow", [body["count"]], "worker")
