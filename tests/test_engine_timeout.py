"""ENGINE_TIMEOUT_SECONDS: an engine that accepts connections and never answers (hung, not
down) costs a request that long, then a 503, never a hang."""

from __future__ import annotations

import socket
import time

from async_api.app import create_app
from async_api.settings import Settings
from tests.support.http import assert_error


def test_a_hung_engine_gets_a_503_after_the_engine_timeout():
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # the kernel completes connections; nobody ever reads or answers
    try:
        gateway = create_app(Settings(resonate_url=f"http://127.0.0.1:{hung.getsockname()[1]}",
                                      engine_timeout_seconds=1.0)).test_client()
        started = time.monotonic()
        response = gateway.get("/wait", query_string={"id": "job-1"})
        took = time.monotonic() - started
    finally:
        hung.close()

    assert_error(response, 503, "engine_unavailable")
    assert response.headers["Retry-After"]
    assert 0.9 <= took < 5, took  # the timeout, not the default 5 s or forever
