"""Settings from the environment: a value the service cannot run with stops it at start, with
one line that names the variable (not a traceback, nor a silent default, nor a 500 later)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests

from async_api.settings import SettingError, Settings
from tests.support.processes import ROOT, free_port, wait_until

BIN = ROOT / ".venv" / "bin"
BAD = [
    ("MAX_BODY_BYTES", "abc"), ("MAX_BODY_BYTES", "-1"), ("RETRY_AFTER_SECONDS", "1.5"),
    ("TRUSTED_PROXY_HOPS", "-1"), ("ENGINE_MAX_CALLS", "0"), ("ENGINE_TIMEOUT_SECONDS", "0"),
    ("ENGINE_TIMEOUT_SECONDS", "nan"), ("LONG_POLL_MAX_SECONDS", "inf"),
    ("JOB_TIMEOUT_SECONDS", "-5"), ("MAX_ID_LENGTH", "-1"), ("ADMISSION_MAX_REQUESTS", "-1"),
    ("WORKER_METRICS_PORT", "70000"), ("WORKER_NICE", "20"), ("HEARTBEAT_SECONDS", "4"),
    # each gunicorn worker died of a traceback, restarted for ever under make run
    ("RESONATE_URL", "localhost:8001"), ("RESONATE_POLL_URL", "http://"),
    ("EMBEDDED_WORKER_GROUPS", "worker,nope"),
    ("JOB_TIMEOUT_SECONDS", "100000000000000000"),  # past the server's int64 ms: every begin 400
    ("STEP_PAUSE_SECONDS", "abc"),  # read by each step: every step failed, retried for ever
    ("API_TOKENS", " , "),  # auth off, silently
    ("API_TOKENS", "ops:tokO,alice:"),  # what alice:$UNSET gives: "alice:" was a token
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_a_value_the_service_cannot_use_is_refused_by_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingError, match=name):
        Settings.from_env()


def test_engine_urls_may_end_with_a_slash(monkeypatch):
    """A worker given "http://engine:8001/" once polled and claimed nothing, silently."""
    monkeypatch.setenv("RESONATE_URL", "http://127.0.0.1:8001/")
    monkeypatch.setenv("RESONATE_POLL_URL", "http://127.0.0.1:8002//")

    settings = Settings.from_env()

    assert (settings.resonate_url, settings.resonate_poll_url) == (
        "http://127.0.0.1:8001", "http://127.0.0.1:8002")


@pytest.mark.parametrize("command", [
    [str(BIN / "gunicorn"), "wsgi:app", "--bind", "127.0.0.1:0"],
    [str(BIN / "python"), "-m", "workers", "--group", "worker"],
], ids=["gateway", "worker"])
@pytest.mark.parametrize(("name", "value", "said"), [
    ("TRUSTED_PROXY_HOPS", "-1", "a whole number, 0 or more, not '-1'"),
    # read by the logging set-up, before any other setting (once a traceback of dictConfig's)
    ("LOG_LEVEL", "loud", "one of debug, info, warning, error, critical, not 'loud'"),
    ("LOG_FORMAT", "xml", "one of json, text, not 'xml'"),
], ids=["TRUSTED_PROXY_HOPS", "LOG_LEVEL", "LOG_FORMAT"])
def test_a_process_stops_at_start_with_a_line_naming_the_variable(command, name, value, said):
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, name: value},
                          capture_output=True, text=True, timeout=30)

    assert done.returncode == 2, done.stderr
    assert f"{name} must be {said}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("name", "value"), [
    ("WEB_CONCURRENCY", "0"),  # gunicorn listened, booted no worker, answered nothing
    ("GUNICORN_TIMEOUT", "x"), ("GUNICORN_GRACEFUL_TIMEOUT", "1.5"),
    ("GUNICORN_WORKER_CONNECTIONS", "0"),
])
def test_gunicorns_own_numbers_are_checked_too(name, value):
    done = subprocess.run([str(BIN / "gunicorn"), "wsgi:app", "--bind", "127.0.0.1:0"], cwd=ROOT,
                          env={**os.environ, name: value}, capture_output=True, text=True,
                          timeout=30)

    assert done.returncode == 2, done.stderr
    assert f"gunicorn: {name} must be a whole number" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_group_from_the_environment_is_checked_like_the_option():
    done = subprocess.run([str(BIN / "python"), "-m", "workers"], cwd=ROOT,
                          env={**os.environ, "WORKER_GROUP": "nope"}, capture_output=True,
                          text=True, timeout=30)

    assert done.returncode == 2, done.stderr
    assert "WORKER_GROUP must be one of" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("command", "env"), [
    ([str(BIN / "python"), "-m", "workers", "--group", "worker"], {}),
    ([str(BIN / "gunicorn"), "wsgi:app", "--bind", "127.0.0.1:0"],  # same-process mode
     {"EMBEDDED_WORKER_GROUPS": "worker"}),
], ids=["worker", "embedded"])
def test_a_ledger_no_step_could_write_stops_the_worker_at_start(tmp_path, command, env):
    """Each step failed on it, and the SDK retried the step for ever: the job stayed pending."""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30,
                          env={**os.environ, **env,
                               "LEDGER_PATH": str(blocked / "ledger.sqlite")})

    assert done.returncode == 2, done.stderr
    assert "LEDGER_PATH: cannot open" in done.stderr and "Traceback" not in done.stderr


def test_engine_urls_swapped_are_said_not_silent(make_stack):
    """The promise API and the task stream swapped: the worker polled the promise API, got a
    404 a second for ever, and said nothing; the gateway's /readyz answered 400 bad_request."""
    stack = make_stack()
    stack.engine.start()
    swapped = {"RESONATE_URL": stack.engine.poll_url, "RESONATE_POLL_URL": stack.engine.url}
    worker = stack.start_worker("worker", swapped)
    gateway = stack.start_gateway(swapped, workers=1)

    ready = requests.get(f"{gateway.url}/readyz", timeout=10)

    assert ready.status_code == 503, ready.text
    wait_until(lambda: "is RESONATE_URL the server's promise API?" in gateway.log(), 10,
               "the gateway to say why it is not ready")
    wait_until(lambda: "not a task stream (is RESONATE_POLL_URL" in worker.log(), 10,
               "the worker to say why no task comes")


GRACEFUL_TIMEOUT_SECONDS = 20  # gunicorn.conf.py's default


@pytest.mark.parametrize(("host", "warned"), [("0.0.0.0", True), ("127.0.0.1", False)])
def test_a_gateway_open_beyond_this_machine_without_tokens_says_so(host, warned):
    """The Procfile binds 0.0.0.0: API_TOKENS left empty (a secret the platform did not set)
    served every job to anyone, and nothing said so. On loopback (`make run`) it is quiet."""
    env = {name: value for name, value in os.environ.items() if name != "API_TOKENS"}
    gateway = subprocess.Popen([str(BIN / "gunicorn"), "wsgi:app", "--bind",
                                f"{host}:{free_port()}"], cwd=ROOT, env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        said = ""
        while "Booting worker" not in said and gateway.poll() is None:
            said += gateway.stderr.readline()
    finally:
        gateway.terminate()  # while its workers boot
        terminated = time.monotonic()
        said += gateway.communicate(timeout=30)[1]

    assert ("API_TOKENS is empty: auth is off" in said) == warned, said
    # a worker still booting ends at the SIGTERM (gunicorn.conf.py post_fork), where it ran on
    # until gunicorn SIGKILLed it at the graceful timeout, 20 s later
    assert gateway.returncode == 0, said  # 3: its workers failed to boot
    assert time.monotonic() - terminated < GRACEFUL_TIMEOUT_SECONDS / 2, said
    assert "was sent SIGKILL" not in said, said
