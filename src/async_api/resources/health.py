"""Liveness (/healthz: the process answers) and readiness (/readyz: the engine answers)."""

from flask_smorest import Blueprint

from async_api.resources import engine
from async_api.schemas import ErrorResponseSchema
from async_api.schemas.health import HealthSchema

blp = Blueprint("health", __name__, description="Process and engine health probes.")


@blp.route("/healthz")
@blp.response(200, HealthSchema)
def healthz() -> dict:
    return {"status": "ok"}


@blp.route("/readyz")
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=ErrorResponseSchema, description="The engine is unreachable.")
def readyz() -> dict:
    engine().ping()  # EngineUnavailable becomes a 503 JSON answer
    return {"status": "ready"}
