"""Real processes for the tests: a Resonate server on free ports, workers, gunicorn gateways."""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from workers import ledger
from workers.functions import canonical

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate` until it returns something truthy; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (requests.RequestException, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last_error})")


class Process:
    """A child process whose output goes to a log file, started in its own process group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.popen = subprocess.Popen(
            self.args, cwd=ROOT, env={**os.environ, **self.env}, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, the crash the product must survive."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 15, group: bool = False) -> None:
        """SIGTERM (to the whole process group with `group`), then SIGKILL to the group if it
        lingers."""
        if not self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)  # orphans of a killed leader
            return
        if group:
            os.killpg(self.pid, signal.SIGTERM)
        else:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(10)

    def children(self) -> list[int]:
        """Pids of the direct children, e.g. a gunicorn master's worker processes."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class EngineServer(Process):
    """The real Resonate server (scripts/resonate-serve) on four free loopback ports."""

    def __init__(self, data_dir: Path, log_dir: Path, extra_env: dict[str, str] | None = None):
        self.http_port, self.poll_port = free_port(), free_port()
        env = {
            "RESONATE_DATA_DIR": str(data_dir),
            "RESONATE_HTTP_ADDR": f"127.0.0.1:{self.http_port}",
            "RESONATE_POLL_ADDR": f"127.0.0.1:{self.poll_port}",
            "RESONATE_GRPC_ADDR": f"127.0.0.1:{free_port()}",
            "RESONATE_METRICS_ADDR": f"127.0.0.1:{free_port()}",
            "RESONATE_TASK_ENQUEUE_DELAY": "1s",
            **(extra_env or {}),
        }
        super().__init__("resonate", [str(ROOT / "scripts" / "resonate-serve")], env, log_dir)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.poll_url = f"http://127.0.0.1:{self.poll_port}"

    def start(self) -> EngineServer:
        super().start()
        wait_until(self.ready, 30, "the Resonate server to answer")
        return self

    def ready(self) -> bool:
        if not self.alive():
            raise AssertionError(f"Resonate server exited:\n{self.log()}")
        return requests.get(f"{self.url}/promises", params={"id": "*", "limit": 1},
                            timeout=1).ok

    def client_env(self) -> dict[str, str]:
        return {"RESONATE_URL": self.url, "RESONATE_POLL_URL": self.poll_url}


class PostgresCluster:
    """A private PostgreSQL cluster on a free loopback port, in a temp dir, gone after the tests.

    Built from Debian's binaries (scripts/ensure-postgres installs them). Postgres refuses to run
    as root, so as root every command runs as the `postgres` OS user; the temp dir sits outside
    pytest's root-only tmp tree so that user can reach it. TCP clients log in with a password
    (scram), as a real deployment would; fsync is off because the tests kill the Resonate
    server, never Postgres.
    """

    def __init__(self) -> None:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                            key=lambda path: int(Path(path).parts[-3]))
        if not candidates:
            raise AssertionError("PostgreSQL is not installed: run scripts/ensure-postgres")
        self.bin = Path(candidates[-1]).parent
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.dir = Path(tempfile.mkdtemp(prefix="async-api-pg-"))
        self.data = self.dir / "data"
        self._databases = 0

    def _run(self, program: str, *args: str) -> str:
        runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run([*runas, str(self.bin / program), *args], cwd=self.dir,
                                capture_output=True, text=True, timeout=60)
        if result.returncode:
            raise AssertionError(f"{program} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def start(self) -> PostgresCluster:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        password_file = self.dir / "password"
        password_file.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(password_file, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
                  "--auth-local=trust", "--auth-host=scram-sha-256",
                  f"--pwfile={password_file}")
        password_file.unlink()
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
                   "-c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.dir / "postgres.log"), "-w", "-t", "60", "start")
        return self

    def create_database(self) -> str:
        """A new empty database; returns its DATABASE_URL."""
        self._databases += 1
        name = f"resonate_{self._databases}"
        self._run("createdb", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", name)
        return f"postgres://postgres:{self.password}@127.0.0.1:{self.port}/{name}"

    def query(self, database_url: str, sql: str) -> str:
        """Runs `sql` with psql over TCP, as the Resonate server connects; returns its rows."""
        return self._run("psql", "-X", "-A", "-t", "-c", sql, database_url).strip()

    def stop(self) -> None:
        try:
            if self.data.exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class Stack:
    """One Resonate server with the workers and gateways that use it."""

    def __init__(self, tmp_dir: Path, engine_env: dict[str, str] | None = None) -> None:
        self.dir = tmp_dir
        self.ledger_path = tmp_dir / "ledger.sqlite"
        self.engine = EngineServer(tmp_dir / "engine", tmp_dir, engine_env)
        self.workers: list[Process] = []
        self.gateways: list[Process] = []
        self.gateway_url = ""

    @property
    def database_url(self) -> str | None:
        """The Postgres database the server stores into, or None for its sqlite file."""
        return self.engine.env.get("DATABASE_URL")

    @property
    def sqlite_path(self) -> Path:
        return Path(self.engine.env["RESONATE_DATA_DIR"]) / "resonate.db"

    def env(self) -> dict[str, str]:
        return {**self.engine.client_env(), "LEDGER_PATH": str(self.ledger_path),
                "PYTHONUNBUFFERED": "1"}

    def start_worker(self, group: str = "worker", env: dict[str, str] | None = None) -> Process:
        name = f"worker-{group}-{len(self.workers)}"
        worker = Process(name, [str(BIN / "python"), "-m", "workers", "--group", group],
                         {**self.env(), **(env or {})}, self.dir)
        worker.start()
        self.workers.append(worker)
        wait_until(lambda: "serving group" in worker.log() or not worker.alive(), 20,
                   f"{name} to start")
        assert worker.alive(), worker.log()
        return worker

    def start_gateway(
        self, extra_env: dict[str, str] | None = None, workers: int | None = None
    ) -> Process:
        """gunicorn with the repo's gunicorn.conf.py (WEB_CONCURRENCY workers, default 2)."""
        port = free_port()
        gateway = Process(
            f"gateway-{len(self.gateways)}",
            [str(BIN / "gunicorn"), "wsgi:app", "--bind", f"127.0.0.1:{port}",
             *(["--workers", str(workers)] if workers else [])],
            {**self.env(), **(extra_env or {})}, self.dir,
        )
        gateway.start()
        gateway.url = f"http://127.0.0.1:{port}"
        self.gateways.append(gateway)
        wait_until(lambda: requests.get(f"{gateway.url}/healthz", timeout=1).ok, 30,
                   "gunicorn to answer")
        if not self.gateway_url:
            self.gateway_url = gateway.url
        return gateway

    def start(
        self,
        groups: list[str],
        worker_env: dict[str, str] | None = None,
        gateway_env: dict[str, str] | None = None,
    ) -> dict[str, Process]:
        """Server, one worker per group, one gateway; returns the workers by group."""
        self.engine.start()
        workers = {group: self.start_worker(group, env=worker_env) for group in groups}
        self.start_gateway(gateway_env)
        return workers

    def stop(self) -> None:
        for process in [*self.gateways, *self.workers, self.engine]:
            process.stop()

    # --- client helpers ------------------------------------------------------------------

    def begin(self, job_id: str | None = None, body: Any = None) -> requests.Response:
        params = {"id": job_id} if job_id else {}
        return requests.post(f"{self.gateway_url}/begin", params=params, json=body, timeout=10)

    def poll(self, job_id: str) -> requests.Response:
        return requests.get(f"{self.gateway_url}/wait", params={"id": job_id}, timeout=10)

    def wait_settled(self, job_id: str, timeout: float = 30) -> dict:
        """Polls /wait like a client would until the job is no longer pending."""
        def settled() -> dict | None:
            response = self.poll(job_id)
            if response.status_code == 200 and response.json()["status"] != "pending":
                return response.json()
            return None
        return wait_until(settled, timeout, f"job {job_id} to settle", interval=0.1)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return requests.post(f"{self.gateway_url}{path}", json=body, timeout=10, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.gateway_url}{path}", timeout=10, **kwargs)

    def job_settled(self, job_id: str, timeout: float = 30) -> dict:
        """Polls GET /jobs/<id> until the job is neither running nor waiting."""
        def settled() -> dict | None:
            job = self.get(f"/jobs/{job_id}").json()
            return job if job["status"] not in ("running", "waiting_for_approval") else None
        return wait_until(settled, timeout, f"job {job_id} to settle", interval=0.1)

    def promise_state(self, promise_id: str) -> str | None:
        """Asks the engine directly, e.g. whether a workflow step is durably done."""
        response = requests.get(f"{self.engine.url}/promises/{promise_id}", timeout=2)
        return response.json()["state"] if response.ok else None

    def promise_exists(self, promise_id: str) -> bool:
        return self.promise_state(promise_id) is not None

    def ran(self, bodies: Iterable[Any], step: str = "foo") -> Counter:
        """How many completed executions of `step` the ledger holds for each job body."""
        keys = {canonical(body) for body in bodies}
        return Counter(key for key, _ in ledger.rows(step, str(self.ledger_path)) if key in keys)

    def begin_held_job(self, job_id: str, body: dict) -> int:
        """Begins a job whose body has a "work" knob; returns the pid of the worker that holds
        it, once that worker is inside the step."""
        assert self.begin(job_id, body).status_code == 202
        wait_until(lambda: self.ran([body], "foo:started"), 15, "the step to start")
        (holder,) = self.worker_pids("foo:started")
        return holder

    def worker_pids(self, step: str = "foo") -> set[int]:
        return {pid for _, pid in ledger.rows(step, str(self.ledger_path))}


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


class Client:
    """A well-behaved polling client: it retries a begin with the same id and body after a
    dropped connection or a 503, and keeps every answer it got for the test to inspect."""

    def __init__(self, url: Callable[[], str]) -> None:
        self.url = url  # read on every attempt: a test may move clients to a new gateway
        self.answers: list[requests.Response] = []
        self.dropped = 0

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        try:
            answer = requests.request(method, f"{self.url()}{path}", timeout=10, **kwargs)
        except requests.RequestException:
            self.dropped += 1
            time.sleep(0.05)
            return None
        self.answers.append(answer)
        if answer.status_code == 503:
            time.sleep(0.2)  # Retry-After says 1 s; shorter keeps the test quick
        return answer

    def begin(self, job_id: str, body: Any, timeout: float = 60) -> requests.Response:
        """Retries until the gateway accepts (or refuses for good, 4xx)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self._send("POST", "/begin", params={"id": job_id}, json=body)
            if answer is not None and answer.status_code != 503:
                return answer
        raise AssertionError(f"begin {job_id} was never answered in {timeout}s")

    def poll(self, job_id: str) -> requests.Response | None:
        return self._send("GET", "/wait", params={"id": job_id})
