"""Every error leaves the gateway as JSON: {"error": {"code", "message", "details"?}}."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from async_api.engine import (
    RESERVED_KEY,
    EngineBusy,
    EngineRejected,
    EngineUnavailable,
    PromiseAlreadySettled,
    PromiseConflict,
    PromiseNotFound,
    ReservedKey,
)
from async_api.field_messages import field_messages

# The engine's refusal (EngineBusy) and the admission gate's (admission.py): one shape for both.
OVERLOADED = "overloaded"
OVERLOADED_MESSAGE = "The gateway is at capacity; retry shortly."


class ApiError(HTTPException):
    """An HTTP error with a machine-readable code, raised by routes."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = status
        self.error_code = code
        self.details = details
        self.headers = headers


def error_response(
    status: int, code: str, message: str, details: Any = None,
    headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None,
) -> Response:
    """The one shape of every error; `extra` adds top-level keys (e.g. a job to poll)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    response = jsonify({"error": error, **(extra or {})})
    response.status_code = status
    response.headers.update(headers or {})
    return response


# The paths that speak Google's API (AIP-193 errors): resources/operations.py.
GOOGLE_API_PREFIX = "/v1/"
# google.rpc.Code's names of the HTTP statuses the gateway answers (AIP-193, code.proto).
GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                 404: "NOT_FOUND", 405: "UNIMPLEMENTED", 409: "ABORTED", 413: "INVALID_ARGUMENT",
                 415: "INVALID_ARGUMENT", 422: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE"}
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def as_google_status(response: Response) -> Response:
    """An error answer, in the shape of a google.rpc.Status (AIP-193), for the routes that
    speak Google's API: `code` the HTTP status, `status` its name, `details` a list, where an
    ErrorInfo's `reason` is this gateway's own code and a BadRequest lists the fields that
    are wrong. google-api-core reads `details` as that list (an object made it raise)."""
    error = (response.get_json(silent=True) or {}).get("error") if response.is_json else None
    if response.status_code < 400 or not isinstance(error, dict):
        return response
    status = google_status(response.status_code, error["code"], error["message"],
                           field_messages(error.get("details")))
    response.set_data(current_app.json.dumps(status, separators=(",", ":")))
    return response


def google_status(status: int, code: str, message: str,
                  violations: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The body of an error in the shape of a google.rpc.Status (as_google_status); the
    admission gate answers its refusals under /v1/ with it too."""
    details: list[dict[str, Any]] = [
        {"@type": ERROR_INFO, "reason": str(code).upper(), "domain": "async-api"}]
    if violations:
        details.append({"@type": BAD_REQUEST, "fieldViolations": [
            {"field": field, "description": text} for field, text in violations]})
    return {"error": {"code": status, "message": message,
                      "status": GOOGLE_STATUS.get(status, "UNKNOWN"), "details": details}}


def error_code(name: str) -> str:
    return name.lower().replace(" ", "_").replace("-", "_").replace("'", "")


def _handle_http_exception(exc: HTTPException) -> Response:
    if isinstance(exc, ApiError):
        return error_response(exc.code, exc.error_code, exc.description, exc.details,
                              exc.headers)
    status = exc.code or 500
    details = None
    # flask-smorest/webargs put per-field validation messages here
    data = getattr(exc, "data", None) or {}
    message = exc.description or exc.name
    if isinstance(data, dict) and data.get("messages"):
        details = data["messages"]
        message = "The request is not valid; details says which fields are wrong."
    response = error_response(status, error_code(exc.name), message, details)
    for name, value in exc.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def _handle_engine_unavailable(exc: EngineUnavailable) -> Response:
    retry_after = current_app.extensions["async_api.settings"].retry_after_seconds
    if isinstance(exc, EngineBusy):
        code, message = OVERLOADED, OVERLOADED_MESSAGE
    else:
        code, message = "engine_unavailable", "The workflow engine is unavailable; retry shortly."
    return error_response(ServiceUnavailable.code, code, message,
                          headers={"Retry-After": str(retry_after)})


def _handle_not_found(exc: PromiseNotFound) -> Response:
    return error_response(404, "not_found", "No job has this id.")


def _handle_conflict(exc: PromiseConflict) -> Response:
    return error_response(409, "conflict",
                          "This id is already used by another job, or by a request with a "
                          "different body.")


def _handle_already_settled(exc: PromiseAlreadySettled) -> Response:
    return error_response(409, "already_settled", "The job already finished.")


def _handle_engine_rejected(exc: EngineRejected) -> Response:
    return error_response(400, "bad_request", "The workflow engine refused the request.")


def _handle_reserved_key(exc: ReservedKey) -> Response:
    return error_response(400, "reserved_key",
                          f"The body may not contain objects with the key {RESERVED_KEY!r}; "
                          "the workflow engine reserves it.")


def _handle_unexpected(exc: Exception) -> Response:
    current_app.logger.exception("unexpected error")  # this handler would otherwise hide it
    return error_response(InternalServerError.code, "internal_error", "Unexpected server error.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, _handle_http_exception)
    app.register_error_handler(EngineUnavailable, _handle_engine_unavailable)
    app.register_error_handler(PromiseNotFound, _handle_not_found)
    app.register_error_handler(PromiseConflict, _handle_conflict)
    app.register_error_handler(EngineRejected, _handle_engine_rejected)
    app.register_error_handler(PromiseAlreadySettled, _handle_already_settled)
    app.register_error_handler(ReservedKey, _handle_reserved_key)
    app.register_error_handler(Exception, _handle_unexpected)
