"""The serving model under `gunicorn wsgi:app`: what a held or busy connection costs the others.

Slow clients that trickle a request, requests that wait (a /price-quote with no worker to
answer it), and a connection that always has its next request waiting must leave /healthz and
POST /begin answering at once for everyone else. With the former gthread workers (2 x 4
threads) a dozen slow clients stalled the gateway.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.processes import wait_until
from tests.support.slow_clients import (
    PipeliningClient,
    SlowClients,
    answer_time,
    honouring_retry_after,
)
from tests.support.stack import Stack

SLOW_CLIENTS = 200
HELD_QUOTES = 50
# Longer than the probes take on a loaded machine (20 of them; CI once saw 2 of 50 quotes end
# their 8 s wait before the probes did), so every quote is still waiting when they are done.
QUOTE_WAIT_SECONDS = 15
PROBES = 10
# Answers take milliseconds; the bound is generous for a busy 2-core machine. A stalled gateway
# misses it by far: the probes queue behind the held requests.
PROMPT_SECONDS = 3.0


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A private stack with the default gunicorn settings. No `pricing` worker: a quote waits
    its whole QUOTE_TIMEOUT_SECONDS."""
    stack = Stack(tmp_path_factory.mktemp("serving"))
    try:
        stack.start(["worker"], gateway_env={"QUOTE_TIMEOUT_SECONDS": str(QUOTE_WAIT_SECONDS)})
        yield stack
    finally:
        stack.stop()


def probe(stack: Stack, label: str) -> list[float]:
    """Answer times of /healthz and POST /begin, each on a new connection."""
    times = []
    for index in range(PROBES):
        times.append(answer_time("GET", f"{stack.gateway_url}/healthz"))
        times.append(answer_time("POST", f"{stack.gateway_url}/begin",
                                 params={"id": f"{label}-{index}"}, json={"probe": label}))
    return times


def test_slow_clients_do_not_stall_probes_or_begins(serving, nonce):
    half = SLOW_CLIENTS // 2
    with (SlowClients(serving.gateway_url, half, "headers") as heads,
          SlowClients(serving.gateway_url, half, "body") as bodies):
        wait_until(lambda: heads.rounds >= 2 and bodies.rounds >= 2, 10,
                   "the slow clients to trickle")
        times = probe(serving, f"slow-{nonce}")
        assert bodies.waiting() == half  # every one still held by the gateway, reading on

    assert max(times) < PROMPT_SECONDS, times
    assert serving.wait_settled(f"slow-{nonce}-0")["status"] == "resolved"


def test_waiting_quotes_do_not_stall_probes_or_begins(serving, nonce):
    sku = f"held-{nonce[:16]}"
    with ThreadPoolExecutor(HELD_QUOTES) as pool:
        quotes = [pool.submit(honouring_retry_after, "POST", f"{serving.gateway_url}/price-quote",
                              json={"sku": sku, "qty": 1}, timeout=QUOTE_WAIT_SECONDS + 20)
                  for _ in range(HELD_QUOTES)]
        wait_until(lambda: serving.promise_exists(f"quote:{sku}:1"), 10, "a quote to start")
        times = probe(serving, f"quote-{nonce}")
        held = sum(not quote.done() for quote in quotes)

    assert max(times) < PROMPT_SECONDS, times
    assert held == HELD_QUOTES  # the probes were answered while every quote was waiting
    assert {quote.result().status_code for quote in quotes} == {202}


PIPELINED = 20_000  # GET /healthz: seconds of a gateway process's time


def test_a_connection_never_idle_does_not_hold_up_the_others(serving):
    """A gevent worker turns to another connection when the one it serves must wait. This one
    never must: its next request is always there. Once the process's event loop has gone 2 ms
    without a turn, the others get one (async_api.turns); before, the new connections'
    requests waited until all 20,000 were answered (6.1 s)."""
    gateway = serving.start_gateway(workers=1)  # the probes meet the busy connection's process
    try:
        with PipeliningClient(gateway.url, "/healthz", PIPELINED) as busy:
            wait_until(lambda: busy.answers > 100, 10, "the busy connection to be answered")
            times = [answer_time("GET", f"{gateway.url}/healthz") for _ in range(PROBES)]
            answered_meanwhile = busy.answers
    finally:
        gateway.stop()  # not left answering what the closed connection had sent

    assert max(times) < PROMPT_SECONDS / 10, times
    assert answered_meanwhile < PIPELINED  # the probes came while it was still being served


class CountingRelay:
    """A TCP relay to `address` that counts the connections made through it."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                self.connections += 1
                upstream = socket.create_connection(self.address)
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


def test_engine_connections_are_kept_alive_across_client_connections(serving):
    """Every client below comes on a new connection, so gevent serves each in a new greenlet;
    the gateway still reuses its keep-alive connections to the engine."""
    relay = CountingRelay(("127.0.0.1", serving.engine.http_port))
    try:
        gateway = serving.start_gateway({"RESONATE_URL": relay.url}, workers=1)
        for _ in range(50):
            answer_time("GET", f"{gateway.url}/readyz")  # one engine call each
    finally:
        relay.close()

    assert 1 <= relay.connections <= 5
