"""gunicorn_wire.OneSendResponse puts the same bytes on the wire as gunicorn's own Response,
in one send when the body is one piece of a known length."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import wsgi

from async_api.gunicorn_wire import OneSendResponse


class RecordingSocket:
    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))


def answer(response_class: type, method: str, status: str, headers: list[tuple[str, str]],
           body: list[bytes]) -> list[bytes]:
    """The sends of one answer, written the way gunicorn's workers write it."""
    request = SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False)
    sock = RecordingSocket()
    response = response_class(request, sock, Config())
    response.start_response(status, headers)
    for piece in body:
        response.write(piece)
    response.close()
    return sock.sends


CASES = {
    "json": ("GET", "200 OK", [("Content-Type", "application/json"), ("Content-Length", "11")],
             [b'{"a": true}']),
    "chunked": ("GET", "200 OK", [("Content-Type", "text/plain")], [b"ab", b"cd"]),
    "two pieces": ("GET", "200 OK", [("Content-Length", "4")], [b"ab", b"cd"]),
    "head": ("HEAD", "200 OK", [("Content-Length", "2")], [b"{}"]),
    "no content": ("DELETE", "204 No Content", [], [b""]),
    "empty": ("GET", "202 Accepted", [("Content-Length", "0")], [b""]),
}


@pytest.mark.parametrize("case", CASES)
def test_the_same_bytes_as_gunicorn(case, monkeypatch):
    monkeypatch.setattr(util, "http_date", lambda: "Thu, 26 Nov 2026 04:00:00 GMT")

    ours = answer(OneSendResponse, *CASES[case])
    gunicorns = answer(wsgi.Response, *CASES[case])

    assert b"".join(ours) == b"".join(gunicorns)


def test_a_body_of_one_piece_leaves_with_its_head_in_one_send():
    sends = answer(OneSendResponse, *CASES["json"])
    gunicorns = answer(wsgi.Response, *CASES["json"])

    assert len(sends) == 1 and len(gunicorns) == 2
    assert sends[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert sends[0].endswith(b'\r\n\r\n{"a": true}')
