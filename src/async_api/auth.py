"""Bearer-token auth for the gateway: on when API_TOKENS is set, off when it is empty.

Each token speaks for a principal (`alice:tokA`; a bare token is "default"), whose name the
request carries as `g.principal`: a job belongs to the principal that started it
(resources.start_job, find_job). Probes, the API documentation and the dashboard's static files
stay open: orchestrators and load balancers call the probes without credentials, and the
dashboard holds no data (its script sends the token the user types with every API call).
Webhooks stay open only when WEBHOOK_SECRET is set: then they prove themselves with their own
HMAC signature; without it, they need a token like any route.
GET /metrics takes METRICS_TOKEN alone when it is set (a scraper then holds no token that could
start jobs), the API's tokens otherwise: it tells who uses the service, and how much.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from apispec import BasePlugin
from flask import Flask, Response, g, request

from async_api.errors import error_response
from async_api.settings import Settings
from async_api.telemetry import METRICS_PATH

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/openapi.json", "/ui"})
OPEN_PREFIXES = ("/docs/", "/ui/")
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


def owner_filter(principal: str | None, admins: tuple[str, ...]) -> str | None:
    """The principal whose jobs alone `principal` may see; None: every job (auth is off, or
    an admin principal)."""
    return None if principal is None or principal in admins else principal


def may_see(principal: str | None, owner: str | None, admins: tuple[str, ...]) -> bool:
    """Whether `principal` (None: auth is off) may see a job `owner` started (None: nobody's,
    as a shared quote or a job started while tokens named no principal)."""
    only = owner_filter(principal, admins)
    return only is None or owner is None or owner == only


def may_change(principal: str | None, owner: str | None, admins: tuple[str, ...]) -> bool:
    """Whether `principal` may cancel or retry a job `owner` started: its own, any for an
    admin or with auth off. A job nobody owns is seen by all and changed by admins alone:
    a shared quote canceled by one principal would be canceled for every other."""
    only = owner_filter(principal, admins)
    return only is None or owner == only


class SecurityDoc(BasePlugin):
    """With auth on, the OpenAPI document says which operations need no token (the probes;
    the webhooks when signed: `security: []`) and that the others answer 401, in the error
    shape of their route (its `default` response)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.auth_on, self.webhooks_signed = bool(settings.api_tokens), bool(
            settings.webhook_secret)

    def operation_helper(self, path: str | None = None,
                         operations: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not self.auth_on or path is None:
            return
        for operation in (operations or {}).values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue  # path-level parameters
            responses = operation["responses"]
            if is_open(path, self.webhooks_signed):
                operation["security"] = []
            elif "default" in responses:  # a component's name, or the response itself
                default = responses["default"]
                responses.setdefault("401", {**default, "description": "No valid bearer token."}
                                     if isinstance(default, dict) else default)


def spec_options(settings: Settings) -> dict[str, Any]:
    """The OpenAPI security scheme, declared only when auth is on (API_SPEC_OPTIONS)."""
    if not settings.api_tokens:
        return {}
    return {
        "security": [{"bearerAuth": []}],
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    }


# The principal a request presenting METRICS_TOKEN speaks for: it may read /metrics, nothing else.
METRICS_PRINCIPAL = "metrics"


def tokens_for(path: str, settings: Settings,
               api_tokens: dict[str, str]) -> dict[str, str] | None:
    """The tokens `path` accepts (token -> principal); None: it is open."""
    if path == METRICS_PATH and settings.metrics_token:
        return {settings.metrics_token: METRICS_PRINCIPAL}
    if is_open(path, bool(settings.webhook_secret)) or not api_tokens:
        return None
    return api_tokens


def install(app: Flask, settings: Settings) -> None:
    """Adds the check as a before_request hook; does nothing when no token is configured."""
    if not settings.api_tokens and not settings.metrics_token:
        return
    api_tokens = principals(settings.api_tokens)

    @app.before_request
    def require_bearer_token() -> Response | None:
        tokens = tokens_for(request.path, settings, api_tokens)
        # open: a probe, the docs, the dashboard's files, a signed webhook (which settles an
        # order's approval, whoever owns it), an OPTIONS (which tells methods, no data), or
        # auth is off
        if tokens is None or request.method == "OPTIONS":
            return None
        name = principal_of(request.headers.get("Authorization"), tokens)
        if name is not None:
            g.principal = name
            return None
        return error_response(401, "unauthorized",
                              "Send a valid token in the header Authorization: Bearer <token>.",
                              headers={"WWW-Authenticate": "Bearer"})
