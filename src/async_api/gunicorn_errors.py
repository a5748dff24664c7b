"""Makes gunicorn's own error answers JSON like the app's.

Gunicorn answers some bad requests before the app sees them (a request line over
limit_request_line: 414, too many or too large headers: 431, malformed HTTP: 400) with an HTML
page. gunicorn.conf.py installs this so that every error leaves the gateway as
{"error": {"code", "message"}}.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util

from async_api.errors import error_code


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for gunicorn.util.write_error (same signature), answering JSON."""
    body = json.dumps({"error": {"code": error_code(reason), "message": mesg or reason}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


def install() -> None:
    util.write_error = write_json_error
