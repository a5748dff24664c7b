"""Bearer-token auth for the gateway: on when API_TOKENS is set, off when it is empty.

Each token speaks for a principal (`alice:tokA`; a bare token is "default"), whose name the
request carries as `g.principal`: a job belongs to the principal that started it
(resources.start_job, find_job). Probes and the API documentation stay open: orchestrators and
load balancers call the probes without credentials. Webhooks stay open only when WEBHOOK_SECRET
is set: then they prove themselves with their own HMAC signature; without it, they need a token
like any route.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from flask import Flask, Response, g, request

from async_api.errors import error_response
from async_api.settings import Settings

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/openapi.json"})
OPEN_PREFIXES = ("/docs/",)
SIGNED_PREFIXES = ("/webhooks/",)


def is_open(path: str, webhooks_signed: bool) -> bool:
    """Whether `path` is served without a token."""
    prefixes = OPEN_PREFIXES + (SIGNED_PREFIXES if webhooks_signed else ())
    return path in OPEN_PATHS or path.startswith(prefixes)


DEFAULT_PRINCIPAL = "default"
_NAMED = re.compile(r"([A-Za-z0-9_.@-]{1,64}):(.+)")


def principals(entries: tuple[str, ...]) -> dict[str, str]:
    """API_TOKENS entries as token -> principal: "alice:tokA" is alice's, "tokA" default's."""
    tokens = {}
    for entry in entries:
        named = _NAMED.fullmatch(entry)
        name, token = (named.group(1), named.group(2)) if named else (DEFAULT_PRINCIPAL, entry)
        tokens[token] = name
    return tokens


def principal_of(header: str | None, tokens: dict[str, str]) -> str | None:
    """The principal whose token the Authorization header presents, None if none does.
    Compares in constant time against every token, so timing tells nothing about which."""
    scheme, _, presented = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    candidate = presented.strip().encode()
    found = None
    for token, name in tokens.items():
        if hmac.compare_digest(candidate, token.encode()):
            found = name
    return found


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
    tokens = principals(settings.api_tokens)

    @app.before_request
    def require_bearer_token() -> Response | None:
        if is_open(request.path, bool(settings.webhook_secret)):
            return None  # a signed webhook settles an order's approval, whoever owns it
        name = principal_of(request.headers.get("Authorization"), tokens)
        if name is not None:
            g.principal = name
            return None
        return error_response(401, "unauthorized",
                              "Send a valid token in the header Authorization: Bearer <token>.",
                              headers={"WWW-Authenticate": "Bearer"})
