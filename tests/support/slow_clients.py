"""Clients that misbehave on purpose (slowloris, a connection that is never idle), a probe that
times the answers, and a client that honours Retry-After."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests


class SlowClients:
    """`count` connections that start a request and never finish it (slowloris), as a context
    manager: they send the request line and then trickle a header (`part="headers"`), or send
    whole headers and trickle a JSON body (`part="body"`), one byte each every `interval`
    seconds. A connection the gateway closes is opened again, as an attacker would do."""

    def __init__(self, url: str, count: int, part: str, interval: float = 0.5) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.head = f"POST /begin HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        self.head += {"headers": "X-Slow: ",
                      "body": ("Content-Type: application/json\r\nContent-Length: 100000\r\n"
                               '\r\n{"slow": "')}[part]
        self.count, self.interval = count, interval
        self.sockets: list[socket.socket] = []
        self.rounds = 0  # trickles sent to every connection
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def _open(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=5)
        sock.sendall(self.head.encode())
        sock.setblocking(False)
        return sock

    def __enter__(self) -> SlowClients:
        self.sockets = [self._open() for _ in range(self.count)]
        self._thread.start()
        return self

    def _trickle(self) -> None:
        while not self._stop.wait(self.interval):
            for index, sock in enumerate(self.sockets):
                with contextlib.suppress(OSError):
                    if _answered(sock):
                        sock.close()
                        self.sockets[index] = self._open()
                    else:
                        sock.send(b"z")
            self.rounds += 1

    def waiting(self) -> int:
        """How many connections the gateway holds open without an answer, reading on."""
        return sum(not _answered(sock) for sock in self.sockets)

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.sockets:
            sock.close()


class PipeliningClient:
    """One keep-alive connection that sends `count` GETs of `path` at once and reads the
    answers as they come, as a context manager: the gateway always finds its next request
    waiting (as with a proxy's busy upstream connection). `answers` counts those read."""

    def __init__(self, url: str, path: str, count: int) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.requests = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode() * count
        self.answers = 0
        self._threads = [threading.Thread(target=self._send, daemon=True),
                         threading.Thread(target=self._read, daemon=True)]

    def __enter__(self) -> PipeliningClient:
        for thread in self._threads:
            thread.start()
        return self

    def _send(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(self.requests)

    def _read(self) -> None:
        marker, tail = b"HTTP/1.1 ", b""
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(1 << 20):
                seen = tail + chunk  # a marker cut in two is counted once: the tail is shorter
                self.answers += seen.count(marker)
                tail = seen[-(len(marker) - 1):]

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()


def _answered(sock: socket.socket) -> bool:
    """Whether the peer answered or closed this non-blocking socket."""
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


def answer_time(method: str, url: str, timeout: float = 10, **kwargs: Any) -> float:
    """Seconds until `url` answers a new connection with a 2xx; fails the test otherwise."""
    started = time.perf_counter()
    try:
        response = requests.request(method, url, timeout=timeout, **kwargs)
    except requests.Timeout:
        raise AssertionError(f"{method} {url} got no answer in {timeout}s") from None
    assert response.ok, response.text[:300]
    return time.perf_counter() - started


def honouring_retry_after(method: str, url: str, **kwargs: Any) -> requests.Response:
    """A request sent again after Retry-After while the gateway answers 503 overloaded: many
    requests arriving at once may find the admission gate (ADMISSION_MAX_REQUESTS per process,
    a long-poll or a quote counted until it starts to wait) full for a moment."""
    while True:
        answer = requests.request(method, url, **kwargs)
        if answer.status_code != 503 or answer.json()["error"]["code"] != "overloaded":
            return answer
        time.sleep(float(answer.headers["Retry-After"]))
