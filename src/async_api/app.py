"""The gateway's app factory: settings, engine, one blueprint per resource, JSON errors.

Apart from the package so that the workers, which import `async_api.engine` and
`async_api.contract`, do not import Flask with it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import FunctionType
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import Api
from werkzeug.middleware.proxy_fix import ProxyFix

from async_api import admission, auth, body, ids, plain, telemetry
from async_api.engine import Engine
from async_api.errors import ApiError, register_error_handlers
from async_api.resources import (
    docs,
    flows,
    health,
    jobs,
    operations,
    orders,
    polling,
    quotes,
    status_monitor,
    ui,
    webhooks,
)
from async_api.schemas import ID_RULES, NEW_ID_RULES, ErrorResponseSchema
from async_api.settings import Settings


class DocumentedApi(Api):
    """flask-smorest's Api, documenting the error body this gateway really sends."""

    ERROR_SCHEMA = ErrorResponseSchema


class CompactJsonProvider(DefaultJSONProvider):
    """Flask's JSON answers (compact, keys sorted, its `default`) from one encoder built once:
    `json.dumps` with options builds a new encoder for every answer."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self._encoder = json.JSONEncoder(default=self.default, ensure_ascii=self.ensure_ascii,
                                         sort_keys=self.sort_keys, separators=(",", ":"))

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if kwargs != {"separators": (",", ":")}:
            return super().dumps(obj, **kwargs)
        return self._encoder.encode(obj)


class Gateway(Flask):
    """Flask, minus two costs it pays again on every request, and with no HTML answer."""

    json_provider_class = CompactJsonProvider

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Flask asks whether a function is a coroutine for every hook of every request, and
        flask-smorest for each of its decorators' layers: about 2 % of a GET /wait. A plain
        function's answer never changes, so it is kept (a bound method is new on every call)."""
        found = self._sync.get(func)
        if found is None:
            found = super().ensure_sync(func)
            if isinstance(func, FunctionType):
                self._sync[func] = found
        return found

    def make_default_options_response(self) -> Response:
        """OPTIONS on any route: `204` with `Allow`, not Flask's empty `200` typed text/html."""
        response = super().make_default_options_response()
        response.status_code = 204
        del response.headers["Content-Type"]
        return response


API_BLUEPRINTS = (health.blp, polling.blp, jobs.blp, status_monitor.blp, operations.blp,
                  orders.blp, webhooks.blp, quotes.blp, flows.blp)


def _check_host() -> None:
    """A Host header that names no valid host is a 400 (RFC 9112), not a job whose answer's
    absolute URLs read `http:///...`; so is none at all in HTTP/1.1 (the URLs then named the
    address gunicorn is bound to)."""
    missing = ("HTTP_HOST" not in request.environ
               and request.environ.get("SERVER_PROTOCOL") == "HTTP/1.1")
    if missing or not request.host:
        raise ApiError(400, "bad_host", "The Host header does not name a valid host.")


def _refuse_disguised_paths() -> None:
    """A path holding "%2F", or starting with "//", is a 404, like any path no route has. The
    server decodes "%2F" before routing, so `/jobs/ID%2Fsteps` (a client quoting an id that
    holds "/") was answered as `/jobs/ID/steps`: another route's answer, for an id no job can
    have. werkzeug matches a path with its leading "/"s stripped, so `//begin` started a job and
    `//metrics` passed a proxy's rule for `/metrics` (a "//" further in is a 404 already)."""
    raw_path = request.environ.get("RAW_URI", "").partition("?")[0]
    if "%2f" in raw_path.lower():
        raise ApiError(404, "not_found", "No route has this path: it holds an encoded \"/\".")
    if raw_path.startswith("//"):
        raise ApiError(404, "not_found", "No route has this path: it starts with \"//\".")


def create_app(settings: Settings | None = None) -> Flask:
    """The app factory: settings from the environment unless given, one blueprint per resource."""
    settings = settings or Settings.from_env()
    app = Gateway(__name__)
    # A path with "//" is a JSON 404, not werkzeug's HTML redirect to the path with one "/".
    app.url_map.merge_slashes = False
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="async-api",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH=docs.PAGE.lstrip("/"),
        OPENAPI_SWAGGER_UI_URL=docs.ASSETS_URL,
        API_SPEC_OPTIONS=auth.spec_options(settings),
    )
    telemetry.install(app)  # first: what the hooks below refuse is logged and counted too
    app.before_request(_check_host)
    app.extensions["async_api.settings"] = settings
    app.extensions["async_api.engine"] = Engine(settings.resonate_url,
                                                settings.engine_timeout_seconds,
                                                settings.engine_max_calls,
                                                poll_url=settings.resonate_poll_url)
    auth.install(app, settings)
    app.before_request(_refuse_disguised_paths)  # after auth: an unknown path is a 401 first
    app.url_map.converters.update(id=ids.IdConverter, new_id=ids.NewIdConverter)
    api = DocumentedApi(app, spec_kwargs={"extra_plugins": [auth.SecurityDoc(settings)]})
    api.register_converter(ids.IdConverter, lambda _: {"type": "string", **ID_RULES})
    api.register_converter(ids.NewIdConverter, lambda _: {"type": "string", **NEW_ID_RULES})
    for blueprint in API_BLUEPRINTS:
        api.register_blueprint(blueprint)
    app.register_blueprint(docs.blp)
    docs.install(app)
    app.register_blueprint(ui.blp)
    webhooks.install(app)  # signatures first, then bodies
    body.install(app)
    register_error_handlers(app)  # after Api(), which installs its own HTTP error handler
    app.wsgi_app = plain.PlainRequests(  # type: ignore[method-assign]
        app.wsgi_app, app.extensions[polling.ANSWERS], app.extensions["async_api.engine"],
        settings)
    if settings.trusted_proxy_hops:  # absolute URLs, plain.py's too, follow X-Forwarded-*
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops,  # type: ignore[method-assign]
                                x_port=hops)
    if settings.admission_max_requests > 0:  # outermost: a refusal costs nothing of the above
        app.wsgi_app = admission.Admission(  # type: ignore[method-assign]
            app.wsgi_app, settings.admission_max_requests, settings.retry_after_seconds,
            settings.max_body_bytes)
    return app
