"""async-api: an HTTP gateway that turns each request into a durable workflow."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from async_api import auth
from async_api.engine import Engine
from async_api.errors import register_error_handlers
from async_api.resources import health, polling
from async_api.schemas import ErrorResponseSchema
from async_api.settings import Settings


class _Api(Api):
    """Documents the product's error body for every error response, not flask-smorest's."""

    ERROR_SCHEMA = ErrorResponseSchema


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Flask:
    """The app factory: settings from the environment unless given, one blueprint per resource."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="async-api",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS=auth.spec_options(settings),
    )
    app.extensions["async_api.settings"] = settings
    app.extensions["async_api.engine"] = engine or Engine(
        settings.resonate_url, settings.engine_timeout_seconds
    )
    auth.install(app, settings)
    api = _Api(app)
    for blueprint in (health.blp, polling.blp):
        api.register_blueprint(blueprint)
    register_error_handlers(app)  # after Api(), which installs its own HTTP error handler
    return app
