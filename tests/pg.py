"""A real PostgreSQL server for tests: Debian's postgresql package, `initdb` into a temporary directory as the
`postgres` user (PostgreSQL refuses to run as root), `pg_ctl` on a free port, its unix socket in that directory.
Like tests/floor_server.py's start_redis: tests that use it start and stop real processes."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
"""Debian's path (a bare `initdb` on PATH may be another build, or absent on a fresh machine)."""


class PostgresServer:
    """One throw-away cluster: `url` for psycopg and `calmline server`; stop/start for fault tests."""

    def __init__(self):
        if not (PG_BIN / "initdb").is_file():
            pytest.fail(f"{PG_BIN / 'initdb'} not found (apt-get install postgresql)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="calmline-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "log"
        self._as_root = os.geteuid() == 0
        if self._as_root:  # the postgres user must own the cluster and reach the directory
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            os.chmod(self.dir, 0o755)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.socket_url = f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(PG_BIN / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=check,
                              cwd=self.dir)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start")
        deadline = time.monotonic() + 30
        while not self.ready():
            if time.monotonic() > deadline:
                pytest.fail(f"postgres did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=2) as con:
                con.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_postgres() -> PostgresServer:
    return PostgresServer()


@pytest.fixture
def postgres():
    server = start_postgres()
    yield server
    server.close()
