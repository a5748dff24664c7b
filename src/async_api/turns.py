"""Fair turns between the connections of a gevent worker process (gunicorn.conf.py calls
`Turns.after_request` after each request).

A gevent worker switches to another connection only when the one it serves must wait. A
keep-alive connection whose next request is already there when the last answer has left (a
proxy's busy upstream connection, a pipelining client, wrk) never has to: the event loop does
not poll for I/O, and every other connection of the process, new ones included, waits behind
it. Under wrk, a settled GET /wait's p99 was 0.7-1.2 s where its p50 was 0.3 ms (README,
"Serving model"). So once the loop has not polled for MAX_HOLD_SECONDS, the request that just
ended waits for the loop's next turn before its connection reads on: 12-16 ms with 8
connections, 56-78 ms with 32. A turn after every request kept it lower (5-48 ms with 32), but
cost 40 us of a settled GET /wait's 220; this costs a turn per MAX_HOLD_SECONDS of work
without one (at 0.5 ms, 10 % of a /wait's CPU; at 2 ms, within the noise).
"""

from __future__ import annotations

import time

import gevent

MAX_HOLD_SECONDS = 0.002
NEXT_TURN_SECONDS = 1e-6  # any positive wait: the greenlet goes on after the next poll for I/O


class Turns:
    """One per gevent worker process: how long its event loop has gone without a turn."""

    def __init__(self) -> None:
        self._turn = -1  # the loop's iteration count when last seen
        self._since = 0.0  # when that count was first seen

    def after_request(self) -> None:
        loop = gevent.get_hub().loop
        now = time.monotonic()
        if loop.iteration != self._turn:
            self._turn, self._since = loop.iteration, now
        elif now - self._since >= MAX_HOLD_SECONDS:
            gevent.sleep(NEXT_TURN_SECONDS)
            self._turn, self._since = loop.iteration, time.monotonic()
