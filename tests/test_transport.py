"""The engine layer's own HTTP/1.1 client (engine/transport.py) against a scripted server: the
answers the Resonate server gives (a Content-Length, chunks, a close) and a connection the
server closed while it sat idle."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from async_api.engine import transport
from async_api.engine.transport import Transport, Unreachable
from tests.support.processes import wait_until


class ScriptedServer:
    """Answers each request with the next canned response; counts connections and requests."""

    def __init__(self, responses: list[bytes], close_after_each: bool = False) -> None:
        self.responses = list(responses)
        self.close_after_each = close_after_each
        self.connections = 0
        self.closed = 0
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        reader = connection.makefile("rb")
        with connection, reader:
            while head := self._read_head(reader):
                self.requests.append(head)
                connection.sendall(self.responses.pop(0))
                if self.close_after_each:
                    break
        self.closed += 1

    @staticmethod
    def _read_head(reader) -> bytes:
        lines, length = [], 0
        while (line := reader.readline()) not in (b"\r\n", b""):
            lines.append(line)
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if not lines:
            return b""
        return b"".join(lines) + b"\r\n" + reader.read(length)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    servers: list[ScriptedServer] = []
    yield servers
    for server in servers:
        server.close()


def _get(url: str, path: str = "/promises/p1") -> requests.Request:
    return requests.Request("get", f"{url}{path}")


def test_keep_alive_answers_with_a_length_share_one_connection(scripted):
    body = b'{"id": "p1", "state": "PENDING"}'
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)
    server = ScriptedServer([ok, ok, ok])
    scripted.append(server)
    client = Transport(server.url, 5)

    answers = [client.send(_get(server.url)) for _ in range(3)]

    assert [a.json()["state"] for a in answers] == ["PENDING"] * 3
    assert server.connections == 1
    assert server.requests[0].startswith(b"GET /promises/p1 HTTP/1.1\r\n")


def test_a_chunked_answer_is_put_together_and_a_post_carries_its_json(scripted):
    chunked = (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\n{\"a\":\r\n3;ext=1\r\n 1}\r\n0\r\nX-Trailer: t\r\n\r\n")
    server = ScriptedServer([chunked])
    scripted.append(server)

    answer = Transport(server.url, 5).send(requests.Request(
        "post", f"{server.url}/promises", json={"id": "p2"}, params={"x": "1 2"}))

    assert answer.status_code == 201 and answer.json() == {"a": 1}
    head, _, sent_body = server.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /promises?x=1+2 HTTP/1.1")
    assert b"Content-Type: application/json" in head and sent_body == b'{"id": "p2"}'


def test_a_connection_the_server_closed_is_not_used_again(scripted, monkeypatch):
    monkeypatch.setattr(transport, "RECHECK_AFTER_SECONDS", 0.0)  # check every idle connection
    closing = b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    server = ScriptedServer([closing, ok, ok], close_after_each=True)
    scripted.append(server)
    client = Transport(server.url, 5)

    statuses = []
    for sent in range(1, 4):
        statuses.append(client.send(_get(server.url)).status_code)
        wait_until(lambda sent=sent: server.closed == sent, 5, "the server to close")

    assert statuses == [404, 200, 200]  # "Connection: close", then closed while idle
    assert server.connections == 3


def test_a_connection_closed_before_its_recheck_is_sent_again_on_a_new_one(scripted):
    """A server restart closes every kept-alive connection; one used again within
    RECHECK_AFTER_SECONDS is not checked first, and the request must not fail for it."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    server = ScriptedServer([ok, ok], close_after_each=True)
    scripted.append(server)
    client = Transport(server.url, 5)

    first = client.send(_get(server.url)).status_code
    wait_until(lambda: server.closed == 1, 5, "the server to close")
    second = client.send(_get(server.url)).status_code

    assert (first, second) == (200, 200)
    assert server.connections == 2 and len(server.requests) == 2


def test_a_request_line_never_holds_what_would_break_it(scripted):
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    server = ScriptedServer([ok])
    scripted.append(server)

    Transport(server.url, 5).send(_get(server.url, "/promises/a b\r\nX-Evil: 1é%2F?id=x y"))

    # (urlsplit drops the CR LF, as browsers do; the rest is percent-encoded)
    assert server.requests[0].startswith(
        b"GET /promises/a%20bX-Evil:%201%C3%A9%2F?id=x%20y HTTP/1.1\r\nHost: ")


def test_no_server_is_unreachable():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{taken.getsockname()[1]}"  # bound, not listening: refused
        with pytest.raises(Unreachable):
            Transport(url, 2).send(_get(url))


def test_an_answer_cut_short_is_unreachable(scripted):
    server = ScriptedServer([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"],
                            close_after_each=True)
    scripted.append(server)
    with pytest.raises(Unreachable, match="cut short"):
        Transport(server.url, 5).send(_get(server.url))
