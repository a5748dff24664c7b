"""Gunicorn settings read from the repo root; `gunicorn wsgi:app` picks this file up by itself.

The bind address is left to gunicorn: $PORT on all interfaces when set (the Procfile way),
127.0.0.1:8000 otherwise; supervisord.conf (make run) passes --bind 127.0.0.1:$PORT.
"""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads: a /price-quote waits up to QUOTE_TIMEOUT_SECONDS; with sync workers, two slow quotes
# would stall every other request, probes included.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# A gateway request is a couple of engine calls; a stuck one is a bug, not work.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM, in-flight requests get this long to finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# The control socket sits at one fixed path per user: several gateways on a machine would clash.
control_socket_disable = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None

# Gunicorn's own early error answers (414, 431, 400 on malformed HTTP) are JSON too.
from async_api import gunicorn_errors  # noqa: E402

gunicorn_errors.install()


def post_worker_init(worker: object) -> None:
    """Same-process mode (EMBEDDED_WORKER_GROUPS): this gateway process serves worker groups."""
    if os.environ.get("EMBEDDED_WORKER_GROUPS"):
        from workers import embedded

        embedded.start()


def worker_exit(server: object, worker: object) -> None:
    if os.environ.get("EMBEDDED_WORKER_GROUPS"):
        from workers import embedded

        embedded.stop()
