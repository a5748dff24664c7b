"""Bearer-token auth for the gateway: on when API_TOKENS is set, off when it is empty.

Probes, the API documentation and the dashboard's static files stay open: orchestrators and
load balancers call the probes without credentials, and the dashboard holds no data (its script
sends the token the user types with every API call). Webhooks stay open only when
WEBHOOK_SECRET is set: then they prove themselves with their own HMAC signature; without it,
they need a token like any route.
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Flask, Response, request

from async_api.errors import error_response
from async_api.settings import Settings

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/openapi.json", "/ui"})
OPEN_PREFIXES = ("/docs/", "/ui/")
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


def install(app: Flask, settings: Settings) -> None:
    """Adds the check as a before_request hook; does nothing when no token is configured."""
    if not settings.api_tokens:
        return

    @app.before_request
    def require_bearer_token() -> Response | None:
        if is_open(request.path, bool(settings.webhook_secret)) or token_accepted(
            request.headers.get("Authorization"), settings.api_tokens
        ):
            return None
        return error_response(401, "unauthorized",
                              "Send a valid token in the header Authorization: Bearer <token>.",
                              headers={"WWW-Authenticate": "Bearer"})
