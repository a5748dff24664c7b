"""The gateway app in the test's own process (Flask's test client), for checks of request
validation: they answer in milliseconds and need no server, worker or gunicorn.

Its engine URL names a port that is bound but never listens, so a request that gets past
validation fails at once with 503 `engine_unavailable`: a test can tell "refused by the
gateway" from "would have reached the engine". Whatever involves the engine runs on a Stack.
"""

from __future__ import annotations

import socket
from typing import Any

from flask.testing import FlaskClient

from async_api.app import create_app
from async_api.settings import Settings

_unused_port = socket.socket()  # held open and never listening: connections are refused
_unused_port.bind(("127.0.0.1", 0))
NOWHERE = f"http://127.0.0.1:{_unused_port.getsockname()[1]}"


def offline_gateway(**settings: Any) -> FlaskClient:
    """A test client of the gateway with these settings (defaults otherwise) and no engine."""
    return create_app(Settings(resonate_url=NOWHERE, **settings)).test_client()
