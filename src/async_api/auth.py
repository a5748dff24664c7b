"""Bearer-token auth for the gateway: on when API_TOKENS is set, off when it is empty.

Probes and the API documentation stay open: orchestrators and load balancers call the probes
without credentials. Webhooks stay open only when WEBHOOK_SECRET is set: then they prove
themselves with their own HMAC signature; without it, they need a token like any route.
GET /metrics takes METRICS_TOKEN alone when it is set (a scraper then holds no token that could
start jobs), the API's tokens otherwise: it tells who uses the service, and how much.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, Response, request

from async_api.errors import error_response
from async_api.settings import Settings
from async_api.telemetry import METRICS_PATH

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/openapi.json"})
OPEN_PREFIXES = ("/docs/",)
SIGNED_PREFIXES = ("/webhooks/",)


def is_open(path: str, webhooks_signed: bool) -> bool:
    """Whether `path` is served without a token."""
    prefixes = OPEN_PREFIXES + (SIGNED_PREFIXES if webhooks_signed else ())
    return path in OPEN_PATHS or path.startswith(prefixes)


def token_accepted(header: str | None, tokens: tuple[str, ...]) -> bool:
    """Compares in constant time against every token, so timing tells nothing about which."""
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return False
    candidate = presented.strip().encode()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate, token.encode())
    return matched


def spec_options(settings: Settings) -> dict[str, Any]:
    """The OpenAPI security scheme, declared only when auth is on (API_SPEC_OPTIONS)."""
    if not settings.api_tokens:
        return {}
    return {
        "security": [{"bearerAuth": []}],
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    }


def tokens_for(path: str, settings: Settings) -> tuple[str, ...]:
    """The tokens `path` accepts; none: it is open."""
    if path == METRICS_PATH and settings.metrics_token:
        return (settings.metrics_token,)
    if is_open(path, bool(settings.webhook_secret)):
        return ()
    return settings.api_tokens


def install(app: Flask, settings: Settings) -> None:
    """Adds the check as a before_request hook; does nothing when no token is configured."""
    if not settings.api_tokens and not settings.metrics_token:
        return

    @app.before_request
    def require_bearer_token() -> Response | None:
        tokens = tokens_for(request.path, settings)
        if not tokens or token_accepted(request.headers.get("Authorization"), tokens):
            return None
        return error_response(401, "unauthorized",
                              "Send a valid token in the header Authorization: Bearer <token>.",
                              headers={"WWW-Authenticate": "Bearer"})
