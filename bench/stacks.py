"""The stacks the benchmark runs, one at a time, on free loopback ports.

- RawServer: the Resonate server alone (scripts/resonate-serve, as `make run` starts it): the
  ceiling for any client of it.
- RawJobCreates: the server and one worker, sent the promises a begin creates (each starts a
  `foo` job, which the worker runs) straight to the server: what a begin costs before any
  gateway, its POST run only.
- Service: this project (tests/support/stack.py's Stack): the server, one `python -m workers --group
  worker` process and the gateway under gunicorn (gunicorn.conf.py: 2 gevent workers).
- CeleryPeer: bench/celery_peer (Flask + Celery + Redis) with the same HTTP contract, from its
  own virtualenv bench/.venv-peer.

Each names its root processes for the CPU accounting (bench/procs.py adds their children),
and its start() returns once they are nearly idle, done starting (procs.wait_quiet).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import requests

from bench import procs
from bench.load import Http, expiry_ms, promise_create
from tests.support.processes import ROOT, Process, free_port, wait_until
from tests.support.servers import EngineServer
from tests.support.stack import Stack

PEER_BIN = ROOT / "bench" / ".venv-peer" / "bin"
# The server as `make run` starts it, with scripts/resonate-serve's defaults (e.g. the 10 ms
# tick): tests/support/servers.py sets a short task enqueue delay for the tests; empty, the script
# falls back to its own default.
ENGINE_ENV = {"RESONATE_TASK_ENQUEUE_DELAY": ""}
WEB_ENV = {"WEB_CONCURRENCY": "2", "GUNICORN_GRACEFUL_TIMEOUT": "2"}


class RawServer:
    """Promise create and get straight on the Resonate server."""

    title = "raw server"
    jobs = False
    begin_only = False
    begin = ("create", "/promises")  # wrk mode, path

    def __init__(self, tmp: Path) -> None:
        self.engine = EngineServer(tmp / "engine", tmp, ENGINE_ENV)
        self.url = ""

    def start(self) -> None:
        self.engine.start()
        self.url = self.engine.url
        procs.wait_quiet(self.roots())

    def settled(self, promise_id: str) -> str:
        """A resolved promise; returns the path that reads it."""
        requests.post(f"{self.url}/promises", timeout=10, json={
            "id": promise_id, "timeout": expiry_ms(), "param": {}}).raise_for_status()
        requests.patch(f"{self.url}/promises/{promise_id}", timeout=10, json={
            "state": "RESOLVED", "value": {}}).raise_for_status()
        return f"/promises/{promise_id}"

    def roots(self) -> dict[str, int]:
        return {"resonate server": self.engine.pid}

    def processes(self) -> list[Process]:
        return [self.engine]

    def stop(self) -> None:
        self.engine.stop()


class JobStack:
    """A stack with the /begin and /wait contract."""

    jobs = True
    begin = ("begin", "/begin")
    begin_only = False  # only the /begin run (and its drain), no other scenario
    url = ""
    long_poll = False  # a wait that holds the request until the job settles

    def unfinished(self, prefix: str, at_most: int = 100_000) -> int:
        raise NotImplementedError

    def drain(self, prefix: str, timeout: float) -> int:
        """Waits until the jobs of `prefix` are done, at most `timeout` s; returns how many
        were still unfinished then."""
        deadline = time.monotonic() + timeout
        while self.unfinished(prefix, at_most=1) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.unfinished(prefix)

    def settled(self, job_id: str, timeout: float = 60) -> str:
        """Runs one job to the end (the first also warms the stack up); returns the path that
        reads it."""
        http = Http(self.url)
        try:
            assert http.begin(job_id) == 202, f"{self.title}: begin {job_id} refused"
            wait_until(lambda: http.status(job_id) == "resolved", timeout,
                       f"{self.title}: job {job_id} to resolve", interval=0.02)
        finally:
            http.close()
        return f"/wait?id={job_id}"


class Service(JobStack):
    """This project: gateway, one worker, Resonate server (sqlite store)."""

    title = "this service"
    long_poll = True

    def __init__(self, tmp: Path, gateway_env: dict[str, str] | None = None) -> None:
        self.stack = Stack(tmp, ENGINE_ENV)
        self.gateway_env = {**WEB_ENV, **(gateway_env or {})}

    def start(self) -> None:
        # A short grace on SIGTERM: the benchmark stops the worker with work possibly queued.
        self.stack.start(["worker"], worker_env={"WORKER_GRACE_SECONDS": "1"},
                         gateway_env=self.gateway_env)
        self.url = self.stack.gateway_url
        procs.wait_quiet(self.roots())

    def unfinished(self, prefix: str, at_most: int = 100_000) -> int:
        return len(self.job_ids(prefix, "pending", at_most))

    def job_ids(self, prefix: str, state: str, at_most: int = 100_000) -> list[str]:
        """Ids of the jobs whose id starts with `prefix` in `state` (pending, resolved,
        rejected; their steps, ids with a ".", are left out), up to `at_most`, from the
        server's search."""
        found: list[str] = []
        params = {"id": f"{prefix}*", "state": state, "limit": min(at_most, 100)}
        while len(found) < at_most:
            answer = requests.get(f"{self.stack.engine.url}/promises", params=params, timeout=10)
            answer.raise_for_status()
            page = answer.json()
            found.extend(promise["id"] for promise in page["promises"] if "." not in promise["id"])
            if not page["promises"] or not page.get("cursor"):
                break
            params = {"cursor": page["cursor"]}
        return found

    def roots(self) -> dict[str, int]:
        return {"resonate server": self.stack.engine.pid,
                "gunicorn": self.stack.gateways[0].pid,
                "worker": self.stack.workers[0].pid}

    def processes(self) -> list[Process]:
        return [self.stack.engine, *self.stack.workers, *self.stack.gateways]

    def stop(self) -> None:
        self.stack.stop()


class RawJobCreates(Service):
    """The server and its worker sent the creates that start jobs, with no gateway between."""

    title = "raw server, job creates"
    begin = ("createjob", "/promises")  # wrk mode, path
    begin_only = True  # a raw create is no HTTP API of a job: nothing to wait for or poll

    def start(self) -> None:
        self.stack.engine.start()
        self.stack.start_worker("worker", env={"WORKER_GRACE_SECONDS": "1"})
        self.url = self.stack.engine.url
        procs.wait_quiet(self.roots())

    def settled(self, job_id: str, timeout: float = 60) -> str:
        """The server warmed up with one job its worker ran."""
        requests.post(f"{self.url}/promises", timeout=10,
                      json=promise_create(job_id, "createjob")).raise_for_status()
        wait_until(lambda: requests.get(f"{self.url}/promises/{job_id}", timeout=10).json()
                   ["state"] == "RESOLVED", timeout, f"{self.title}: job {job_id} to resolve",
                   interval=0.02)
        return f"/promises/{job_id}"

    def roots(self) -> dict[str, int]:
        return {"resonate server": self.stack.engine.pid, "worker": self.stack.workers[0].pid}


class CeleryPeer(JobStack):
    """Flask + Celery + Redis (see bench/celery_peer/__init__.py for its settings)."""

    title = "celery peer"

    def __init__(self, tmp: Path) -> None:
        if not (PEER_BIN / "celery").exists() or not shutil.which("redis-server"):
            raise SystemExit("the Celery peer needs bench/.venv-peer and redis-server: "
                             "run `make bench`")
        self.redis_port, web_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{web_port}"
        env = {"REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
               "PEER_LEDGER_PATH": str(tmp / "peer-ledger.sqlite"),
               "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.redis = Process("redis", [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
            "--dir", str(tmp), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--protected-mode", "yes"], {}, tmp)
        self.celery = Process("celery", [
            str(PEER_BIN / "celery"), "-A", "bench.celery_peer.tasks", "worker",
            "--loglevel", "WARNING", "--hostname", f"peer-{self.redis_port}@%h"], env, tmp)
        self.web = Process("peer-web", [
            str(PEER_BIN / "gunicorn"), "bench.celery_peer.web:app",
            "-c", str(ROOT / "bench" / "celery_peer" / "gunicorn.conf.py"),
            "--bind", f"127.0.0.1:{web_port}"], env, tmp)

    def redis_cli(self, *command: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *command],
                              capture_output=True, text=True, timeout=10).stdout.strip()

    def start(self) -> None:
        self.redis.start()
        wait_until(lambda: self.redis_cli("ping") == "PONG", 20, "redis to answer")
        self.celery.start()
        self.web.start()
        wait_until(lambda: requests.get(f"{self.url}/healthz", timeout=1).ok, 30,
                   "the peer's gunicorn to answer")
        procs.wait_quiet(self.roots())

    def unfinished(self, prefix: str, at_most: int = 100_000) -> int:
        """Jobs in Celery's queue or taken but not finished (acks_late keeps a job in
        `unacked` until it ran): every job of the peer, not only `prefix`'s."""
        return int(self.redis_cli("llen", "celery")) + int(self.redis_cli("hlen", "unacked"))

    def roots(self) -> dict[str, int]:
        return {"redis": self.redis.pid, "gunicorn": self.web.pid, "celery": self.celery.pid}

    def processes(self) -> list[Process]:
        return [self.redis, self.celery, self.web]

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.stop(group=True)
