"""An engine that answers slowly: a proxy in front of the Resonate server that holds each GET."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests


class SlowProxy(ThreadingHTTPServer):
    """Forwards GETs (and POSTs, with `posts`) to the Resonate server after a delay: makes
    gateway requests slow."""

    def __init__(self, target: str, delay: float, posts: bool = False) -> None:
        self.target, self.delay = target, delay
        self.seen = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.seen.set()
                time.sleep(proxy.delay)
                self._answer(requests.get(proxy.target + self.path, timeout=5))

            def do_POST(self) -> None:
                if not posts:
                    self.send_error(501)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen.set()
                time.sleep(proxy.delay)
                headers = {name: value for name, value in self.headers.items()
                           if name.lower() not in ("host", "content-length", "connection")}
                self._answer(requests.post(proxy.target + self.path, data=body,
                                           headers=headers, timeout=5))

            def _answer(self, upstream: requests.Response) -> None:
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@contextlib.contextmanager
def slowly_answering(target: str, delay: float = 1.5,
                     posts: bool = False) -> Iterator[SlowProxy]:
    """A SlowProxy in front of `target`, serving until the block ends."""
    proxy = SlowProxy(target, delay, posts)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
