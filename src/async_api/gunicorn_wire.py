"""Two changes to what gunicorn writes on the wire; gunicorn.conf.py installs them in each worker.

- Its own error answers are JSON like the app's. Gunicorn answers some bad requests before the
  app sees them (a request line over limit_request_line: 414, too many or too large headers:
  431, malformed HTTP: 400) with an HTML page; now every error leaves the gateway as
  {"error": {"code", "message"}}, with the X-Request-ID and traceparent every answer carries
  (a request this malformed is not read for the ones it may have sent).
- An answer whose body is one piece of a known length (every JSON answer of the app) leaves in
  one send with its head, where gunicorn sends the head, then the body: two system calls and
  two packets, 6 % of a GET /wait's CPU (bench). Anything else goes gunicorn's way.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util
from gunicorn.http import wsgi

from async_api import logs
from async_api.errors import error_code


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for gunicorn.util.write_error (same signature), answering JSON."""
    body = json.dumps({"error": {"code": error_code(reason), "message": mesg or reason}}).encode()
    _, traceparent = logs.new_span(None)  # every answer carries both, these too
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{logs.REQUEST_ID_HEADER}: {logs.request_id(None)}\r\n"
            f"{logs.TRACEPARENT_HEADER}: {traceparent}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class OneSendResponse(wsgi.Response):
    """gunicorn's Response, sending a body of one piece with its head (test_gunicorn_wire)."""

    def write(self, arg: bytes) -> None:
        if (self.headers_sent or self.chunked or self._omits_body or not isinstance(arg, bytes)
                or self.response_length != len(arg)):
            super().write(arg)
            return
        head = self.default_headers() + [f"{name}: {value}\r\n" for name, value in self.headers]
        self.headers_sent = True
        self.sent += len(arg)
        util.write(self.sock, ("".join(head) + "\r\n").encode("latin-1") + arg)


def install() -> None:
    util.write_error = write_json_error
    wsgi.Response = OneSendResponse  # what wsgi.create() builds for each request
