"""The gateway's app factory: settings, engine, one blueprint per resource, JSON errors.

Apart from the package so that the workers, which import `async_api.engine` and
`async_api.contract`, do not import Flask with it.
"""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api
from werkzeug.middleware.proxy_fix import ProxyFix

from async_api import admission, auth, body, ids, telemetry
from async_api.engine import Engine
from async_api.errors import register_error_handlers
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


API_BLUEPRINTS = (health.blp, polling.blp, jobs.blp, status_monitor.blp, operations.blp,
                  orders.blp, webhooks.blp, quotes.blp, flows.blp)


def create_app(settings: Settings | None = None) -> Flask:
    """The app factory: settings from the environment unless given, one blueprint per resource."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    if settings.trusted_proxy_hops:  # absolute URLs then follow the proxy's X-Forwarded-*
        hops = settings.trusted_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops,  # type: ignore[method-assign]
                                x_port=hops)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="async-api",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=docs.ASSETS_URL,
        API_SPEC_OPTIONS=auth.spec_options(settings),
    )
    telemetry.install(app)  # first: what the hooks below refuse is logged and counted too
    app.extensions["async_api.settings"] = settings
    app.extensions["async_api.engine"] = Engine(settings.resonate_url,
                                                settings.engine_timeout_seconds,
                                                settings.engine_max_calls,
                                                poll_url=settings.resonate_poll_url)
    auth.install(app, settings)
    app.url_map.converters.update(id=ids.IdConverter, new_id=ids.NewIdConverter)
    api = DocumentedApi(app)
    api.register_converter(ids.IdConverter, lambda _: {"type": "string", **ID_RULES})
    api.register_converter(ids.NewIdConverter, lambda _: {"type": "string", **NEW_ID_RULES})
    for blueprint in API_BLUEPRINTS:
        api.register_blueprint(blueprint)
    app.register_blueprint(docs.blp)
    app.register_blueprint(ui.blp)
    webhooks.install(app)  # signatures first, then bodies
    body.install(app)
    register_error_handlers(app)  # after Api(), which installs its own HTTP error handler
    if settings.admission_max_requests > 0:  # outermost: a refusal costs nothing of the above
        app.wsgi_app = admission.Admission(  # type: ignore[method-assign]
            app.wsgi_app, settings.admission_max_requests, settings.retry_after_seconds,
            settings.max_body_bytes)
    return app
