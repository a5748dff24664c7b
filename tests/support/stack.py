"""Stack: a Resonate server on free ports with the worker processes and gunicorn gateways that
use it, started and stopped as a unit (conftest.py's fixtures build them)."""

from __future__ import annotations

import re
from pathlib import Path

import requests

from tests.support.http import GatewayRequests
from tests.support.ledger import LedgerChecks
from tests.support.processes import BIN, TEARDOWN_DRAIN_SECONDS, Process, wait_until
from tests.support.servers import EngineServer

LISTENING = re.compile(r"Listening at: (http://127\.0\.0\.1:\d+)")


class Stack(GatewayRequests, LedgerChecks):
    """One Resonate server with the workers and gateways that use it.

    What a test asks it over HTTP is in http.py, what it counts in its ledger in ledger.py.
    """

    def __init__(self, tmp_dir: Path, engine_env: dict[str, str] | None = None) -> None:
        self.dir = tmp_dir
        self.ledger_path = tmp_dir / "ledger.sqlite"
        self.engine = EngineServer(tmp_dir / "engine", tmp_dir, engine_env)
        self.workers: list[Process] = []
        self.gateways: list[Process] = []
        self.gateway_url = ""
        self.started_with: list[Process] = []  # set by the shared `stack` fixture

    @property
    def database_url(self) -> str | None:
        """The Postgres database the server stores into, or None for its sqlite file."""
        return self.engine.env.get("DATABASE_URL")

    @property
    def engine_url(self) -> str:
        return self.engine.url

    @property
    def sqlite_path(self) -> Path:
        return Path(self.engine.env["RESONATE_DATA_DIR"]) / "resonate.db"

    def env(self) -> dict[str, str]:
        return {**self.engine.client_env(), "LEDGER_PATH": str(self.ledger_path),
                "PYTHONUNBUFFERED": "1"}

    def start_worker(self, group: str = "worker", env: dict[str, str] | None = None,
                     own_session: bool = True) -> Process:
        name = f"worker-{group}-{len(self.workers)}"
        worker = Process(name, [str(BIN / "python"), "-m", "workers", "--group", group],
                         {**self.env(), **(env or {})}, self.dir, own_session)
        worker.start()
        self.workers.append(worker)
        wait_until(lambda: "serving group" in worker.log() or not worker.alive(), 20,
                   f"{name} to start")
        assert worker.alive(), worker.log()
        return worker

    def start_gateway(
        self, extra_env: dict[str, str] | None = None, workers: int | None = None
    ) -> Process:
        """gunicorn with the repo's gunicorn.conf.py (WEB_CONCURRENCY workers, default 2), on a
        port it picks itself (port 0) and logs: no other process can take it first. Its metrics
        directory is in the test's own: a gateway a test kills (SIGKILL) cannot remove the one
        gunicorn.conf.py would make in /tmp."""
        name = f"gateway-{len(self.gateways)}"
        gateway = Process(
            name,
            [str(BIN / "gunicorn"), "wsgi:app", "--bind", "127.0.0.1:0",
             *(["--workers", str(workers)] if workers else [])],
            {**self.env(), "PROMETHEUS_MULTIPROC_DIR": str(self.dir / f"{name}-metrics"),
             **(extra_env or {})}, self.dir,
        )
        gateway.start()
        self.gateways.append(gateway)

        def listening() -> str | None:
            assert gateway.alive(), gateway.run_log()
            found = LISTENING.search(gateway.run_log())
            return found and found.group(1)
        gateway.url = wait_until(listening, 30, "gunicorn to listen")
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
        """Gateways and workers are asked to stop at once and wait out their graces together
        (one after the other, they took most of each teardown); the server, which the workers
        drain against, last."""
        for process in [*self.gateways, *self.workers]:
            process.ask_to_stop()
        for gateway in self.gateways:
            gateway.wait_stopped()
        for worker in self.workers:
            worker.wait_stopped(TEARDOWN_DRAIN_SECONDS)
        self.engine.stop()

    def begin_held_job(self, job_id: str, body: dict) -> int:
        """Begins a job whose body has a "work" knob; returns the pid of the worker that holds
        it, once that worker is inside the step."""
        assert self.begin(job_id, body).status_code == 202
        wait_until(lambda: self.ran([body], "foo:started"), 15, "the step to start")
        (holder,) = self.worker_pids("foo:started")
        return holder
