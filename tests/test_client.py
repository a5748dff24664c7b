"""async_api.client and the `async-api` CLI end to end: the library against the real stack, the
CLI as the subprocess a script runs (exit codes, --json, env configuration, error lines)."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from async_api import client as client_module
from async_api.cli import main as cli_main
from async_api.client import (
    DEFAULT_BODY,
    ApiError,
    Client,
    Conflict,
    NotFound,
    Overloaded,
    WaitTimeout,
)
from tests.conftest import SHARED_STACK_ON_SQLITE
from tests.support.processes import BIN, ROOT, free_port
from tests.support.slow_engine import slowly_answering
from tests.support.stack import Stack

CLI = BIN / "async-api"
COMMANDS = ("begin", "submit", "status", "wait", "cancel", "retry", "steps", "jobs")
TOKEN = "cli-token"


def cli(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The console script as a shell runs it, configured by ASYNC_API_URL (and `env`)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASYNC_API_")}
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=60,
                          env={**base, "ASYNC_API_URL": url, **(env or {})})


def shown_job(lines: str) -> tuple[str, dict[str, str]]:
    """The CLI's lines for one job: `ID  STATUS`, and its details by field."""
    first, *details = lines.splitlines()
    return first, dict(line.strip().split(": ", 1) for line in details)


def counting_requests(client: Client) -> list[str]:
    """Every request the client sends, as `METHOD path`, appended as it is answered."""
    sent: list[str] = []
    client.session.hooks["response"].append(
        lambda response, **_: sent.append(f"{response.request.method} {response.request.path_url}"))
    return sent


def test_the_client_starts_and_waits_for_jobs_and_a_resend_runs_nothing_twice(stack, nonce):
    client = Client(stack.gateway_url)
    body = {"nonce": nonce, "sleep": 1}
    job_id = f"cl-{nonce}"

    assert client.begin(body, id=job_id) == {"promise": job_id, "status": "pending",
                                             "wait": f"/wait?id={job_id}"}
    minted = client.begin(body)["promise"]  # no id: a fresh job, whose id the client minted
    assert uuid.UUID(minted)
    order = client.submit_job(f"CL-{nonce}", ["x"])
    assert order["job_id"] == f"order:CL-{nonce}"

    sent = counting_requests(client)
    job = client.wait(job_id, timeout=20)
    assert job["status"] == "resolved"
    assert nonce in job["result"]["result"]
    # one long-poll held until the job settled, then the job's view: no polling loop
    assert sent == [f"GET /jobs/{job_id}/operation", f"GET /jobs/{job_id}"]
    assert client.status(job_id) == job

    assert client.begin(body, id=job_id)["status"] == "resolved"  # the same id reconnects
    assert client.wait(minted, timeout=20)["status"] == "resolved"
    assert list(stack.ran([body]).values()) == [2]  # two ids, two runs; no more
    assert client.wait(order["job_id"], timeout=20)["result"]["status"] == "shipped"


def test_the_client_raises_typed_errors_with_the_api_code_and_message(stack, nonce):
    client = Client(stack.gateway_url)
    with pytest.raises(NotFound) as missing:
        client.status(f"nope-{nonce}")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert missing.value.message == "No job has this id."

    with pytest.raises(ApiError) as invalid:
        client.submit_job("has space", ["x"])
    assert (invalid.value.status, invalid.value.code) == (422, "unprocessable_entity")
    assert "order_id" in invalid.value.details["json"]

    slow = client.begin({"nonce": nonce, "sleep": 30})["promise"]
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as late:
        client.wait(slow, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 3
    assert late.value.job["status"] == "pending"

    with pytest.raises(Conflict) as taken:
        client.begin({"other": nonce}, id=slow)
    assert taken.value.code == "conflict"
    assert client.cancel(slow)["status"] == "canceled"
    assert client.wait(slow, timeout=5)["status"] == "canceled"
    assert client.cancel(slow)["status"] == "canceled"  # sent again (an answer lost): the same
    done = client.begin({"nonce": nonce})["promise"]
    client.wait(done, timeout=10)
    with pytest.raises(Conflict) as settled:
        client.cancel(done)
    assert settled.value.code == "already_settled"


def test_an_id_holding_a_slash_is_no_job_not_another_route(stack, nonce):
    """The client quotes "/" in an id (%2F); the gateway decoded it before routing, so
    `status("ID/steps")` got ID's steps and the CLI died on a KeyError."""
    job_id = Client(stack.gateway_url).begin({"nonce": nonce})["promise"]
    stack.wait_settled(job_id)

    for call, tail in ((Client.status, "steps"), (Client.status, "operation"),
                       (Client.steps, "x")):
        with pytest.raises(NotFound):
            call(Client(stack.gateway_url), f"{job_id}/{tail}")
    shown = cli(stack.gateway_url, "status", f"{job_id}/steps")
    assert shown.returncode == 3, shown.stderr
    assert shown.stderr.startswith("error: not_found: ") and "Traceback" not in shown.stderr


def test_jobs_follows_next_cursor_through_every_page(stack, nonce):
    client = Client(stack.gateway_url)
    failed = [client.begin({"fail": nonce, "n": n})["promise"] for n in range(5)]
    for job_id in failed:
        assert client.wait(job_id, timeout=20)["status"] == "rejected"
    one_page = stack.get("/jobs", params={"state": "rejected", "function": "foo",
                                          "limit": 100}).json()
    assert one_page["next_cursor"] is None  # the whole listing, to compare the pages with

    paged = [job["job_id"] for job in client.jobs(status="rejected", function="foo",
                                                  page_size=2)]
    assert paged == [job["job_id"] for job in one_page["jobs"]]
    assert set(failed) <= set(paged)
    assert [job["job_id"] for job in client.jobs(status=["rejected"], function="foo", limit=3,
                                                 page_size=2)] == paged[:3]


@SHARED_STACK_ON_SQLITE
def test_a_503_is_sent_again_after_its_retry_after(stack, nonce, monkeypatch):
    job_id = f"busy-{nonce}"
    stack.begin(job_id, {"nonce": nonce})
    stack.wait_settled(job_id)
    with slowly_answering(stack.engine.url, delay=0.5) as engine:
        # one process with one engine call at a time: a second call is refused while it runs
        gateway = stack.start_gateway({"RESONATE_URL": engine.url, "ENGINE_MAX_CALLS": "1"},
                                      workers=1)
        client = Client(gateway.url)
        with ThreadPoolExecutor(1) as pool:
            holder = pool.submit(Client(gateway.url).status, job_id)
            assert engine.seen.wait(10)  # the one slot is taken for half a second
            with monkeypatch.context() as patched:
                patched.setattr(client_module, "UNAVAILABLE_RETRIES", 0)
                with pytest.raises(Overloaded) as refused:
                    client.status(job_id)
            assert (refused.value.status, refused.value.code) == (503, "overloaded")
            started = time.monotonic()
            assert client.status(job_id)["status"] == "resolved"  # refused first, then served
            assert time.monotonic() - started >= 1.0  # Retry-After: 1, honoured
            assert holder.result()["status"] == "resolved"


def test_cli_wait_exits_0_1_or_2_by_outcome(stack, nonce):
    url = stack.gateway_url
    failing = cli(url, "begin", "--id", f"bad-{nonce}", json.dumps({"fail": f"no {nonce}"}))
    assert failing.stdout == f"bad-{nonce}  pending\n"
    assert cli(url, "begin", "--id", f"slow-{nonce}", json.dumps({"sleep": 30})).returncode == 0
    begun = cli(url, "begin", "--id", f"ok-{nonce}", "--json", json.dumps({"n": nonce}))
    assert begun.returncode == 0, begun.stderr
    assert json.loads(begun.stdout)["promise"] == f"ok-{nonce}"

    done = cli(url, "wait", f"ok-{nonce}", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    first, details = shown_job(done.stdout)
    assert (first, details["function"], details["attempt"]) == (f"ok-{nonce}  resolved", "foo",
                                                                 "1")
    assert nonce in json.loads(details["result"])["result"]

    failed = cli(url, "wait", f"bad-{nonce}", "--json")
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["reason"]["message"] == f"no {nonce}"

    late = cli(url, "wait", f"slow-{nonce}", "--timeout", "0.5")
    assert late.returncode == 2, late.stderr
    assert shown_job(late.stdout)[0] == f"slow-{nonce}  pending"
    # not a terminal: a line for each new state while it waited, then why it gave up
    assert late.stderr.splitlines() == [f"slow-{nonce} pending",
                                        f"timed out: job slow-{nonce} did not settle within 0.5 s"]

    assert cli(url, "cancel", f"slow-{nonce}").stdout.startswith(f"slow-{nonce}  canceled\n")
    assert cli(url, "wait", f"slow-{nonce}").returncode == 1


def test_cli_shows_jobs_as_lines_or_json(stack, nonce):
    url = stack.gateway_url
    submitted = cli(url, "submit", f"S-{nonce}", "x", "y", "--json")
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["job_id"]
    assert job_id == f"order:S-{nonce}"
    stack.job_settled(job_id)

    shown = json.loads(cli(url, "status", job_id, "--json").stdout)
    assert (shown["status"], shown["result"]["items"]) == ("resolved", ["x", "y"])
    first, details = shown_job(cli(url, "status", job_id).stdout)
    assert first == f"{job_id}  resolved"
    assert details["progress"] == "100% ship done"
    assert json.loads(details["result"])["status"] == "shipped"

    listed = cli(url, "jobs", "--status", "resolved", "--function", "process_order",
                 "--limit", "1", "--json")
    assert [job["job_id"] for job in json.loads(listed.stdout)] == [job_id]  # newest first
    table = cli(url, "jobs", "--status", "resolved", "--status", "rejected", "--limit", "500")
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["JOB_ID", "STATUS", "FUNCTION", "CREATED_AT"]
    assert rows and rows[0].split()[:3] == [job_id, "resolved", "process_order"]
    assert len(rows) > 1  # the other tests' jobs too


def test_the_client_and_the_cli_list_the_jobs_waiting_for_approval(stack, nonce):
    job_id = f"order:CW-{nonce}"
    assert stack.post(f"/orders/CW-{nonce}/approve-and-ship").status_code == 202
    client = Client(stack.gateway_url)
    assert [job["status"] for job in client.jobs(status=["waiting_for_approval"])
            if job["job_id"] == job_id] == ["waiting_for_approval"]
    table = cli(stack.gateway_url, "jobs", "--status", "waiting_for_approval", "--limit", "500")
    assert table.returncode == 0, table.stderr
    assert [job_id, "waiting_for_approval"] in [line.split()[:2]
                                                for line in table.stdout.splitlines()]
    assert stack.post(f"/jobs/{job_id}/cancel").status_code == 200


def test_retry_and_steps_through_the_client_and_the_cli(stack, nonce):
    client, url = Client(stack.gateway_url), stack.gateway_url
    failed = client.begin({"fail": "not today", "n": nonce})["promise"]
    assert client.wait(failed, timeout=20)["status"] == "rejected"

    retried = cli(url, "retry", failed, "--json")
    assert retried.returncode == 0, retried.stderr
    second = json.loads(retried.stdout)
    assert (second["job_id"], second["attempt"], second["retry_of"]) == \
        (f"{failed}:attempt-2", 2, failed)
    assert client.retry(failed)["job_id"] == second["job_id"]  # the same attempt, not a third
    assert cli(url, "wait", second["job_id"]).returncode == 1  # the same body fails again
    assert shown_job(cli(url, "status", failed).stdout)[1]["retried_by"] == second["job_id"]

    steps = client.steps(failed)
    assert steps["job_id"] == failed
    assert [(step["kind"], step["function"]) for step in steps["steps"]] == \
        [("step", "foo_effect")]
    header, row = cli(url, "steps", failed).stdout.splitlines()
    assert header.split() == ["ID", "KIND", "FUNCTION", "STATUS", "CREATED_AT", "COMPLETED_AT"]
    (step,) = steps["steps"]
    assert row.split() == [step["id"], "step", "foo_effect", step["status"], step["created_at"],
                           step["completed_at"]]

    succeeded = client.begin({"n": nonce})["promise"]
    client.wait(succeeded, timeout=20)
    with pytest.raises(Conflict) as refused:
        client.retry(succeeded)
    assert refused.value.code == "not_retryable"
    not_retryable = cli(url, "retry", succeeded)
    assert (not_retryable.returncode, not_retryable.stdout) == (3, "")
    assert not_retryable.stderr.startswith("error: not_retryable: The job is resolved")


def test_cli_wait_draws_the_progress_a_job_reports(make_stack, nonce):
    """On sqlite only: drawing is the CLI's; test_history.py stores progress on both stores."""
    stack = make_stack()
    stack.start(["worker"], {"STEP_PAUSE_SECONDS": "0.6"})  # process_order: 3 steps, 1.8 s
    order_id = f"P-{nonce}"
    assert cli(stack.gateway_url, "submit", order_id, "x").returncode == 0

    terminal, stderr = pty.openpty()  # a terminal: the spinner is redrawn in place
    waited = subprocess.run([str(CLI), "--url", stack.gateway_url, "wait", f"order:{order_id}"],
                            stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=60)
    os.close(stderr)
    drawn = os.read(terminal, 65536).decode()
    os.close(terminal)
    assert waited.returncode == 0
    assert waited.stdout.startswith(f"order:{order_id}  resolved\n")
    frames = drawn.split("\r\x1b[K")
    bars = {f"order:{order_id} pending [#######.............] 33% validate done",
            f"order:{order_id} pending [#############.......] 67% charge done"}
    assert {frame[2:] for frame in frames if "%" in frame} & bars  # at least one report seen
    assert all(frame[2:] in bars or frame[2:] == f"order:{order_id} pending"
               for frame in frames[1:-1])
    assert frames[-1] == ""  # the line is cleared before the job is printed


def test_cli_errors_are_a_line_with_the_api_code_not_a_traceback(stack, nonce):
    nowhere = f"http://127.0.0.1:{free_port()}"

    missing = cli(nowhere, "--url", stack.gateway_url, "status", f"nope-{nonce}")
    assert missing.returncode == 3
    assert missing.stderr == "error: not_found: No job has this id. (HTTP 404)\n"
    assert missing.stdout == ""

    invalid = cli(stack.gateway_url, "jobs", "--status", "bogus")  # the API knows the states
    assert invalid.returncode == 64, invalid.stderr
    assert "Invalid value for '--status': Must be one of: pending" in invalid.stderr

    unreachable = cli(nowhere, "status", "x")
    assert unreachable.returncode == 3
    assert unreachable.stderr.startswith(f"error: cannot reach {nowhere}")

    for not_json in ("{nope", '{"a": 1, "a": 2}', '{"a": NaN}', "1e999"):  # as the API reads
        refused = cli(stack.gateway_url, "begin", not_json)
        assert refused.returncode == 64, (not_json, refused.stdout)
        assert "Usage:" in refused.stderr and "not JSON" in refused.stderr
        assert "Traceback" not in refused.stderr
    with page_server() as page:  # a URL that answers 200, with a page: not the API
        not_the_api = cli(page, "jobs")
    assert not_the_api.returncode == 3, not_the_api.stderr
    assert "not the API's JSON: is it an async-api gateway?" in not_the_api.stderr
    for failed in (missing, unreachable, not_the_api):
        assert "Traceback" not in failed.stderr


def test_cli_output_closed_early_is_no_traceback_and_no_job_failure(stack, nonce):
    for n in range(3):
        stack.begin(f"pipe-{nonce}-{n}", {"nonce": nonce})
    # `true` reads nothing and is gone long before the CLI has its answer to write
    reader = subprocess.run(f"{CLI} jobs --limit 100 | true; exit ${{PIPESTATUS[0]}}",
                            shell=True, executable="/bin/bash", capture_output=True, text=True,
                            timeout=60, env={**os.environ, "ASYNC_API_URL": stack.gateway_url})
    assert reader.returncode == 141, reader.stderr  # not 1, "the job failed"
    assert "Traceback" not in reader.stderr


def test_begin_sends_the_json_it_is_given_null_too(stack, nonce):
    api = Client(stack.gateway_url)
    for n, (body, result) in enumerate(((None, "Processed: null"),
                                        (DEFAULT_BODY, 'Processed: {"foo": "bar"}'))):
        job_id = api.begin(body, id=f"null-{nonce}-{n}")["promise"]
        assert api.wait(job_id, timeout=20)["result"]["result"] == result
    with pytest.raises(ValueError):  # JSON has no NaN: not sent, and not "unreachable"
        api.begin({"a": float("nan")})


@contextlib.contextmanager
def page_server() -> Iterator[str]:
    """A server that answers every GET with 200 and an HTML page; yields its URL."""
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "13")
            self.end_headers()
            self.wfile.write(b"<p>a page</p>")

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


def test_cli_sends_the_token_from_the_option_or_the_environment(stack: Stack, nonce):
    gateway = stack.start_gateway({"API_TOKENS": TOKEN}, workers=1)

    for refused in (cli(gateway.url, "status", "x"),
                    cli(gateway.url, "--token", "wrong", "status", "x")):
        assert refused.returncode == 3
        assert refused.stderr.startswith("error: unauthorized: Send a valid token")
    begun = cli(gateway.url, "begin", "--json", json.dumps({"n": nonce}),
                env={"ASYNC_API_TOKEN": TOKEN})
    assert begun.returncode == 0, begun.stderr
    job_id = json.loads(begun.stdout)["promise"]
    assert Client(gateway.url, token=TOKEN).wait(job_id, timeout=20)["status"] == "resolved"


def test_every_command_has_help():
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda args: cli("http://unused", *args, "--help"),
                                [(), *((command,) for command in COMMANDS)]))
    for command, answer in zip(("", *COMMANDS), answers, strict=True):
        assert answer.returncode == 0, answer.stderr
        assert answer.stdout.startswith(f"Usage: async-api {command}".rstrip())
    assert "ASYNC_API_URL" in answers[0].stdout and "ASYNC_API_TOKEN" in answers[0].stdout


def test_the_client_and_the_cli_load_neither_flask_nor_the_engine():
    program = ("import sys, async_api.cli; print(sorted(m for m in sys.modules "
               "if m.split('.')[0] in ('flask', 'werkzeug', 'marshmallow', 'resonate') "
               "or m.startswith('async_api.')))")
    loaded = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    assert loaded.stdout.strip() == str(["async_api.cli", "async_api.client",
                                         "async_api.field_messages", "async_api.strict_json"])


def test_an_api_errors_details_are_on_its_line(monkeypatch, capsys):
    def refused(client, *args, **kwargs):
        raise ApiError(409, "conflict", "Taken.", {"json": {"items": ["Not a list."]}})

    monkeypatch.setattr(Client, "_call", refused)
    monkeypatch.setattr(sys, "argv", ["async-api", "status", "x"])
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # pytest keeps its SIGPIPE
    with pytest.raises(SystemExit) as exited:
        cli_main()

    assert exited.value.code == 3
    assert capsys.readouterr().err == \
        'error: conflict: Taken. (HTTP 409) {"json": {"items": ["Not a list."]}}\n'


@pytest.mark.parametrize("timeout", ["nan", "NaN", "-1"])
def test_a_wait_timeout_that_is_no_number_of_seconds_is_a_usage_error(monkeypatch, capsys,
                                                                     timeout):
    """click's FloatRange lets `nan` by: the request's timeout then died in urllib3, a
    traceback instead of exit 64."""
    monkeypatch.setattr(Client, "_call", lambda *args, **kwargs: pytest.fail("called the API"))
    monkeypatch.setattr(sys, "argv", ["async-api", "wait", "job-1", "--timeout", timeout])
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    with pytest.raises(SystemExit) as exited:
        cli_main()

    assert exited.value.code == 64
    assert "Invalid value for '--timeout'" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["127.0.0.1:5001", "localhost:5001", "http://", "ftp://host"])
@pytest.mark.parametrize("command", [("status", "x"), ("begin", "{}")])
def test_a_url_that_is_no_http_url_is_a_usage_error(monkeypatch, capsys, url, command):
    """Sent nowhere, it was said as `cannot reach` (exit 3, a gateway down to whoever reads it)
    and, for begin, followed by an offer to resend a job that was never sent."""
    monkeypatch.setattr(Client, "_call", lambda *args, **kwargs: pytest.fail("called the API"))
    monkeypatch.setenv("ASYNC_API_URL", url)
    monkeypatch.setattr(sys, "argv", ["async-api", *command])
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    with pytest.raises(SystemExit) as exited:
        cli_main()

    assert exited.value.code == 64
    said = capsys.readouterr().err
    assert "Invalid value for '--url'" in said and "cannot reach" not in said


def test_a_failed_begin_says_the_id_it_sent(monkeypatch, capsys):
    """Without --id the client mints one: a begin whose answer was lost (a 503 after the
    engine stored it, no answer at all) ran a job the user could neither find nor resend."""
    def lost(client, *args, **kwargs):
        raise client_module.Unreachable("cannot reach http://gateway (ReadTimeout)")

    monkeypatch.setattr(Client, "_call", lost)
    monkeypatch.setattr(sys, "argv", ["async-api", "begin", '{"n": 1}'])
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    with pytest.raises(SystemExit) as exited:
        cli_main()

    assert exited.value.code == 3
    error, said = capsys.readouterr().err.splitlines()
    assert error == "error: cannot reach http://gateway (ReadTimeout)"
    minted = said.split()[2]
    assert uuid.UUID(minted) and f"`begin --id {minted}` again" in said


def test_a_begin_refused_for_its_request_offers_no_resend(stack, nonce):
    """A 4xx started nothing, and the same request meets the same answer: no "again"."""
    refused = cli(stack.gateway_url, "begin", "--id", f"bad.{nonce}", "{}")
    assert refused.returncode == 3
    assert refused.stderr.startswith("error: invalid_id: ")
    assert "again" not in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_a_resend_whose_kept_alive_connection_was_closed_goes_on_a_new_one():
    """gunicorn closes a connection idle for its keepalive (2 s): a resend after Retry-After: 2
    could find its connection closing under it. Played here by a server that answers a 503 on a
    connection, then drops that connection at its next request; a new one gets the job."""
    overloaded = b'{"error": {"code": "overloaded", "message": "Retry later."}}'
    job = b'{"job_id": "x", "status": "pending"}'
    answers = [b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Type: "
               b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(overloaded), overloaded),
               b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
               b"%d\r\n\r\n%s" % (len(job), job)]
    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []

    def serve() -> None:
        for n in range(2):
            connection, _ = listener.accept()
            connections.append(n)
            with connection:
                connection.recv(65536)
                connection.sendall(answers[n])
                if n == 0:
                    connection.recv(65536)  # the resend, on the kept-alive connection: dropped

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        answer = Client(f"http://127.0.0.1:{listener.getsockname()[1]}").status("x")
    finally:
        listener.close()
    assert answer == {"job_id": "x", "status": "pending"}
    assert connections == [0, 1]


def test_wait_rides_out_an_engine_restart(make_stack, nonce):
    """`wait --timeout 60` gave up 3 s into an engine restart (its 503s), the job resolving
    later."""
    stack = make_stack()
    stack.start(["worker"])
    job_id = f"restart-{nonce}"
    assert stack.begin(job_id, {"sleep": 4, "nonce": nonce}).status_code == 202
    with ThreadPoolExecutor(1) as pool:
        waited = pool.submit(Client(stack.gateway_url).wait, job_id, 60)
        stack.engine.kill()
        time.sleep(6)  # the client's three resends of a 503 take about 3 s
        stack.engine.start()
        assert waited.result(timeout=60)["status"] == "resolved"
