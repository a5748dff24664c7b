"""The servers a stack stands on, as processes: the Resonate server, and the private PostgreSQL
cluster it stores into when a test runs on the Postgres store."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import requests

from tests.support.processes import (
    PORT_ATTEMPTS,
    ROOT,
    Process,
    free_port,
    lost_its_port,
    wait_until,
)

# When the server offers an unclaimed task again (RESONATE_TASK_ENQUEUE_DELAY), in the tests.
TASK_ENQUEUE_DELAY_SECONDS = 1


class EngineServer(Process):
    """The real Resonate server (scripts/resonate-serve) on four free loopback ports.

    Its first start moves to fresh ports if one was taken meanwhile; a restart (after a kill)
    keeps them, since its workers and gateways know them."""

    def __init__(self, data_dir: Path, log_dir: Path, extra_env: dict[str, str] | None = None):
        env = {
            "RESONATE_DATA_DIR": str(data_dir),
            "RESONATE_TASK_ENQUEUE_DELAY": f"{TASK_ENQUEUE_DELAY_SECONDS}s",
            **(extra_env or {}),
        }
        super().__init__("resonate", [str(ROOT / "scripts" / "resonate-serve")], env, log_dir)
        self.served = False
        self.choose_ports()

    def choose_ports(self) -> None:
        self.http_port, self.poll_port = free_port(), free_port()
        self.env.update({
            "RESONATE_HTTP_ADDR": f"127.0.0.1:{self.http_port}",
            "RESONATE_POLL_ADDR": f"127.0.0.1:{self.poll_port}",
            "RESONATE_GRPC_ADDR": f"127.0.0.1:{free_port()}",
            "RESONATE_METRICS_ADDR": f"127.0.0.1:{free_port()}",
        })
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.poll_url = f"http://127.0.0.1:{self.poll_port}"

    def start(self) -> EngineServer:
        if self.served:
            super().start()
            wait_until(self.ready, 30, "the Resonate server to answer again")
        else:
            self.start_on_fresh_ports(self.choose_ports, self.ready,
                                      "the Resonate server to answer")
            self.served = True
        return self

    def ready(self) -> bool:
        if not self.alive():
            raise AssertionError(f"Resonate server exited:\n{self.run_log()}")
        return requests.get(f"{self.url}/promises", params={"id": "*", "limit": 1},
                            timeout=1).ok

    def client_env(self) -> dict[str, str]:
        return {"RESONATE_URL": self.url, "RESONATE_POLL_URL": self.poll_url}

    def requests_answered(self, kind: str) -> float:
        """How many api requests of `kind` (CreatePromise, CompleteTask, ...) the server has
        answered, by its own metrics."""
        return self._counted("api_total_requests", kind)

    def coroutines_run(self, kind: str) -> float:
        """How many coroutines of `kind` (EnqueueTasks, CreatePromise, ...) the server has run,
        background ones included, by its own metrics."""
        return self._counted("coroutines_total", kind)

    def _counted(self, metric: str, kind: str) -> float:
        text = requests.get(f"http://{self.env['RESONATE_METRICS_ADDR']}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(f"{metric}{{") and f'type="{kind}"' in line)


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
        log = self.dir / "postgres.log"
        for attempt in range(1, PORT_ATTEMPTS + 1):
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} "
                       "-c fsync=off -c max_connections=100")
            try:
                self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(log), "-w",
                          "-t", "60", "start")
                return self
            except AssertionError:
                if attempt == PORT_ATTEMPTS or not lost_its_port(log.read_text(errors="replace")):
                    raise
                log.unlink()  # its owner may be another user: start the next log afresh
                self.port = free_port()  # taken since it was chosen
        raise AssertionError("unreachable")

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
