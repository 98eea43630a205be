"""Real tracking servers on loopback for the load tier: PostgreSQL in a temporary data directory
and `mlflow server` on it with served artifacts, as a team runs them (compose.yaml).

PostgreSQL refuses to run as root, so under root the server runs as `nobody` (setpriv). Where
the binaries, psycopg2 or an unprivileged user are missing, the fixtures skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/local/bin", "/usr/bin")
START_TIMEOUT_S = 300.0  # the first start migrates the schema; slow on a loaded machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_binary(name: str) -> str | None:
    for folder in PG_BIN_DIRS:
        path = Path(folder) / name
        if path.is_file():
            return str(path)
    return shutil.which(name)


def as_unprivileged() -> list[str]:
    """The command prefix that drops root for PostgreSQL; empty when not root."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root and setpriv is missing: PostgreSQL cannot be started")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@dataclass
class Postgres:
    """A PostgreSQL server in `data` on 127.0.0.1:`port`, database `genbench`, trust auth."""

    data: Path
    port: int
    prefix: list[str]

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://genbench@127.0.0.1:{self.port}/genbench"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.prefix, pg_binary("pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args],
                       check=True, capture_output=True, timeout=90)


def start_postgres() -> Postgres:
    """Initialise and start a server in a fresh folder of its own (readable by the unprivileged user,
    which pytest's private temporary folders are not)."""
    if not (pg_binary("initdb") and pg_binary("pg_ctl")):
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed (the test extra)")
    prefix = as_unprivileged()
    folder = Path(tempfile.mkdtemp(prefix="genbench-pg-"))
    os.chmod(folder, 0o755)
    if prefix:
        shutil.chown(folder, "nobody")
    data = folder / "pgdata"
    subprocess.run([*prefix, pg_binary("initdb"), "-D", str(data), "-U", "genbench", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    pg = Postgres(data, free_port(), prefix)
    pg.pg_ctl("-l", str(folder / "pg.log"), "-o", f"-p {pg.port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    subprocess.run([*prefix, pg_binary("createdb"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "genbench", "genbench"],
                   check=True, capture_output=True, timeout=60)
    return pg


class MlflowServer:
    """`mlflow server` on 127.0.0.1 over a PostgreSQL backend, serving artifacts from `artifacts`."""

    def __init__(self, backend_uri: str, artifacts: Path, log: Path):
        self.backend_uri, self.artifacts, self.log = backend_uri, artifacts, log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        cmd = [str(mlflow) if mlflow.exists() else "mlflow", "server", "--backend-store-uri", self.backend_uri,
               "--serve-artifacts", "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", "2"]
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer in {START_TIMEOUT_S:g} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def postgres():
    pg = start_postgres()
    yield pg
    pg.pg_ctl("-m", "fast", "stop")
    shutil.rmtree(pg.data.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(postgres: Postgres, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(postgres.uri, folder / "artifacts", folder / "server.log")
    server.start()
    yield server
    server.stop()
