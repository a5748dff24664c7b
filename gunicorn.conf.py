"""Gunicorn settings read from the repo root; `gunicorn wsgi:app` picks this file up by itself.

The bind address is left to gunicorn: $PORT on all interfaces when set (the Procfile way),
127.0.0.1:8000 otherwise; supervisord.conf (make run) passes --bind 127.0.0.1:$PORT.
"""

import os
import signal

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Serving model (README "Serving model"): gevent. Every connection is a greenlet, so a slow
# client, a waiting /price-quote or a held long-poll costs a few kilobytes, not a thread: they
# cannot starve /healthz or /begin. gunicorn patches the standard library in each worker before
# it loads the app, so `requests` and time.sleep yield instead of blocking.
worker_class = "gevent"
# Open connections per worker process (slow or idle ones included); past that, new ones queue.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
# A worker whose event loop is blocked this long (CPU-bound, or a call gevent cannot make
# cooperative) is killed and replaced; waiting on I/O does not count, engine calls time out.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM, in-flight requests get this long to finish.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
# The control socket sits at one fixed path per user: several gateways on a machine would clash.
control_socket_disable = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# The app alone decides whether X-Forwarded-* headers are believed (TRUSTED_PROXY_HOPS, werkzeug's
# ProxyFix): gunicorn by default takes X-Forwarded-Proto from any client on loopback, which would
# let a client choose the scheme of the absolute URLs (Location, Operation-Location) it is sent.
secure_scheme_headers: dict[str, str] = {}


def post_worker_init(worker: object) -> None:
    """In each worker, after gevent has patched it and the app is loaded (importing the app
    here, not at the top, keeps the master from importing `requests` and friends unpatched):

    - gunicorn's own early error answers (414, 431, 400 on malformed HTTP) become JSON too;
    - in same-process mode (EMBEDDED_WORKER_GROUPS) this process also serves worker groups;
    - on SIGTERM, held long-polls answer at once with the job as it is (see below).
    """
    from async_api import gunicorn_errors

    gunicorn_errors.install()
    _answer_long_polls_on_sigterm(worker)
    if os.environ.get("EMBEDDED_WORKER_GROUPS"):
        from workers import embedded

        embedded.start()


def _answer_long_polls_on_sigterm(worker: object) -> None:
    """A long-poll may hold its request for LONG_POLL_MAX_SECONDS, longer than the graceful
    timeout: without this, a deploy would wait for every held request and then cut them. The
    engine's waits end instead, and the requests answer (pending) before the worker exits."""
    engine = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("async_api.engine")
    if engine is None:
        return
    original = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: object) -> None:
        import gevent  # the worker class; a signal handler may not block, so spawn

        gevent.spawn(engine.stop_waiting)
        if callable(original):
            original(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    # signal.signal() makes the signal interrupt system calls again; gunicorn had turned that
    # off so that SIGTERM does not break the engine calls of in-flight requests.
    signal.siginterrupt(signal.SIGTERM, False)


def worker_exit(server: object, worker: object) -> None:
    if os.environ.get("EMBEDDED_WORKER_GROUPS"):
        from workers import embedded

        embedded.stop()
