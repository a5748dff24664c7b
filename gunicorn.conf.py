"""Gunicorn settings read from the repo root; `gunicorn wsgi:app` picks this file up by itself.

The bind address is left to gunicorn: $PORT on all interfaces when set (the Procfile way),
127.0.0.1:8000 otherwise; supervisord.conf (make run) passes --bind 127.0.0.1:$PORT.
"""

import contextlib
import gc
import glob
import ipaddress
import os
import queue
import shutil
import signal
import sys
import tempfile
from typing import Any, NoReturn

from gunicorn import glogging

from async_api import logs  # stdlib only: the master imports no Flask, no prometheus_client
from async_api.settings import SettingError, Settings, env_int  # stdlib only too


def _stop(exc: SettingError) -> NoReturn:
    """A setting read before gunicorn's log is set up stops it with one line naming it."""
    print(f"gunicorn: {exc}", file=sys.stderr)
    sys.exit(2)


def _gunicorn_int(name: str, default: int, least: int) -> int:
    """A number of gunicorn's own, checked as the service's settings are."""
    try:
        return env_int(name, default, least=least)
    except SettingError as exc:
        _stop(exc)


# 0 boots no worker: gunicorn listened and never answered
workers = _gunicorn_int("WEB_CONCURRENCY", 2, least=1)
# Serving model (README "Serving model"): gevent. Every connection is a greenlet, so a slow
# client, a waiting /price-quote or a held long-poll costs a few kilobytes, not a thread: they
# cannot starve /healthz or /begin. gunicorn patches the standard library in each worker before
# it loads the app, so `requests` and time.sleep yield instead of blocking.
worker_class = "gevent"
# Open connections per worker process (slow or idle ones included); past that, new ones queue.
worker_connections = _gunicorn_int("GUNICORN_WORKER_CONNECTIONS", 1000, least=1)
# A worker whose event loop is blocked this long (CPU-bound, or a call gevent cannot make
# cooperative) is killed and replaced; waiting on I/O does not count, engine calls time out.
timeout = _gunicorn_int("GUNICORN_TIMEOUT", 30, least=0)
# On SIGTERM, in-flight requests get this long to finish.
graceful_timeout = _gunicorn_int("GUNICORN_GRACEFUL_TIMEOUT", 20, least=0)
# The control socket sits at one fixed path per user: several gateways on a machine would clash.
control_socket_disable = True
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# The app alone decides whether X-Forwarded-* headers are believed (TRUSTED_PROXY_HOPS, werkzeug's
# ProxyFix): gunicorn by default takes X-Forwarded-Proto from any client on loopback, which would
# let a client choose the scheme of the absolute URLs (Location, Operation-Location) it is sent.
secure_scheme_headers: dict[str, str] = {}
# Likewise its forwarder_headers: a SCRIPT_NAME header from any client on loopback (a proxy on
# the same host passes it on unless it drops names with "_") became the path prefix of every
# absolute URL it was sent, or a 500 when its path did not start with it. The gateway is not
# mounted under a prefix.
forwarder_headers = ""  # gunicorn reads a comma-separated list: none


class Logger(glogging.Logger):
    """gunicorn's logger, whose own lines (its error log) go out with the app's, through
    async_api.logs: in LOG_FORMAT (json by default), on stderr. Not `logconfig_dict`, which would
    do the same but make gunicorn build an access-log record for every request, written or not
    (8 % of a GET /wait's CPU, py-spy)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # also on a configuration reload (SIGHUP): then again below
        try:
            logs.setup()
        except SettingError as exc:  # LOG_LEVEL or LOG_FORMAT: before on_starting, no log yet
            _stop(exc)


logger_class = Logger

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# The directory on_starting made, removed on_exit: in the environment, not in this module,
# which a reload (SIGHUP) reads afresh (the directory was then left behind).
MADE_MULTIPROC_DIR = "ASYNC_API_MADE_METRICS_DIR"
MADE_DIR_PREFIX = "async-api-metrics-"  # then the master's pid: <prefix><pid>-<random>


def on_starting(server: Any) -> None:
    """Before the first fork: the settings are read once, so that a variable the service cannot
    use stops gunicorn with one line naming it (not every worker failing to boot in turn).
    Then the directory where every worker process writes its metrics (prometheus-client's
    multiprocess mode, async_api.metrics), set in the environment the workers inherit. It must
    hold this gateway's files alone: a given PROMETHEUS_MULTIPROC_DIR is emptied (stale counts
    of a previous run would be added to this one's), an unset one is a fresh temporary
    directory, removed on exit (or, once its gateway was killed, by the next one to start)."""
    try:
        settings = Settings.from_env()
        if settings.embedded_worker_groups:  # as `python -m workers` checks it (ledger.check)
            from workers import ledger  # stdlib only

            ledger.check()
    except SettingError as exc:
        server.log.error("%s", exc)
        sys.exit(2)
    if not settings.api_tokens and not all(map(_loopback, server.cfg.address)):
        server.log.warning("API_TOKENS is empty: auth is off, and this gateway listens beyond "
                           "this machine; anyone who reaches it may start, read and cancel "
                           "every job")
    path = os.environ.get(MULTIPROC_DIR)
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
    else:
        _remove_orphaned_multiproc_dirs()
        path = tempfile.mkdtemp(prefix=f"{MADE_DIR_PREFIX}{os.getpid()}-")
        os.environ[MULTIPROC_DIR] = os.environ[MADE_MULTIPROC_DIR] = path
    server.log.info("metrics: multiprocess directory %s", path)


def _loopback(address: Any) -> bool:
    """A bound address only this machine reaches: loopback, or a unix socket (a str)."""
    if isinstance(address, str):
        return True
    host = address[0]
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: where it points is the resolver's to say


def _remove_orphaned_multiproc_dirs() -> None:
    """The directories that gateways killed before on_exit (SIGKILL, a crash) left in the
    temporary directory: each is named after its gunicorn master, and removed once no process
    has that pid (tests/test_metrics.py)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{MADE_DIR_PREFIX}*-*")):
        pid = os.path.basename(path).removeprefix(MADE_DIR_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def on_exit(server: Any) -> None:
    made = os.environ.pop(MADE_MULTIPROC_DIR, None)
    if made:
        shutil.rmtree(made, ignore_errors=True)


_turns: list[Any] = []  # the worker process's async_api.turns.Turns, under gevent


_STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def post_fork(server: Any, worker: object) -> None:
    """A worker forked with the master's signal handlers, which only queue a signal for the
    master's loop: a SIGTERM that came before the worker installed its own (during gevent's
    patching and the app's import) was lost, and the booting worker ran on until gunicorn
    SIGKILLed it at the graceful timeout, 20 s later (tests/test_settings.py). Until then the
    default action applies: a worker that has served nothing just ends. One that came even
    before this hook, on a busy machine, is in the queue the master's handler left here (a
    stop the master had queued itself ends this worker too, as the master is stopping)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    for signum in _STOPS:
        signal.signal(signum, signal.SIG_DFL)
    for signum in set(_STOPS) & set(_drained(server.SIG_QUEUE)):
        os.kill(os.getpid(), signum)  # pending until unblocked, then the default action
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)


def _drained(signals: queue.SimpleQueue) -> list[int]:
    """What this process's copy of the master's signal queue holds (taking it changes nothing
    in the master's)."""
    taken = []
    with contextlib.suppress(queue.Empty):
        while True:
            taken.append(signals.get_nowait())
    return taken


def post_worker_init(worker: object) -> None:
    """In each worker, after gevent has patched it and the app is loaded (importing the app
    here, not at the top, keeps the master from importing `requests` and friends unpatched):

    - gunicorn's own early error answers (414, 431, 400 on malformed HTTP) become JSON too,
      and an answer of one piece leaves with its head in one send (async_api.gunicorn_wire);
    - while the admission gate of the process is full, a plain request is refused from its
      bytes, before gunicorn parses it (async_api.early_refusal; under gevent);
    - in same-process mode (EMBEDDED_WORKER_GROUPS) this process also serves worker groups,
      and drains them from the SIGTERM on;
    - on SIGTERM, held long-polls answer at once with the job as it is (see below);
    - what start-up built is frozen out of the garbage collector's sight (gc.freeze): it lives
      as long as the process, and each full collection that walked it under load paused every
      request of the process for 40-120 ms, the tail of `make bench-overload`'s answers
      (PERFORMANCE.md, "Overload", seventh session; tests/test_gunicorn_conf.py).
    """
    from async_api import gunicorn_wire

    gunicorn_wire.install()
    gevent = sys.modules.get("gevent")
    if gevent is not None and gevent.monkey.is_module_patched("socket"):  # not under gthread
        from async_api import early_refusal
        from async_api.admission import Admission
        from async_api.turns import Turns

        _turns.append(Turns())
        gate = getattr(getattr(worker, "wsgi", None), "wsgi_app", None)
        if isinstance(gate, Admission):
            early_refusal.install(gate, worker)
    _answer_long_polls_on_sigterm(worker)
    if os.environ.get("EMBEDDED_WORKER_GROUPS"):
        from workers import embedded

        embedded.start()
        _drain_embedded_workers_on_sigterm(worker)
    gc.freeze()


def _answer_long_polls_on_sigterm(worker: object) -> None:
    """A long-poll may hold its request for LONG_POLL_MAX_SECONDS, longer than the graceful
    timeout: without this, a deploy would wait for every held request and then cut them. The
    engine's waits end instead, and the requests answer (pending) before the worker exits."""
    engine = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("async_api.engine")
    if engine is not None:
        _on_sigterm(engine.stop_waiting)


def _drain_embedded_workers_on_sigterm(worker: Any) -> None:
    """Same-process mode: the worker groups stop taking tasks at the SIGTERM and drain while
    the requests in flight finish, within the graceful timeout (workers/embedded.py says why);
    worker_exit waits for that drain."""
    from workers import embedded

    _on_sigterm(embedded.stop, worker.cfg.graceful_timeout)


def _on_sigterm(action: Any, *args: Any) -> None:
    """At SIGTERM, `action(*args)` starts on a greenlet of its own, then gunicorn's handler
    (or the one set before) runs."""
    original = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: object) -> None:
        import gevent  # the worker class; a signal handler may not block, so spawn

        gevent.spawn(action, *args)
        if callable(original):
            original(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
    # signal.signal() makes the signal interrupt system calls again; gunicorn had turned that
    # off so that SIGTERM does not break the engine calls of in-flight requests.
    signal.siginterrupt(signal.SIGTERM, False)


def worker_exit(server: object, worker: Any) -> None:
    if os.environ.get("EMBEDDED_WORKER_GROUPS"):
        from workers import embedded

        embedded.stop(worker.cfg.graceful_timeout)


def post_request(worker: object, req: object, environ: object, resp: object) -> None:
    """After each request: the process's other connections get a turn if this one has kept
    its event loop from polling too long (async_api.turns; tests/test_slow_clients.py)."""
    if _turns:
        _turns[0].after_request()
