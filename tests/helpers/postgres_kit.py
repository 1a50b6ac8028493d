"""A throwaway PostgreSQL server for tests: Debian's `postgresql` package (initdb, postgres), a cluster in a
temporary folder, listening only on a unix socket in that folder (no TCP port to collide on), run as a
non-root user (the `postgres` system user through runuser when the tests run as root: postgres refuses
root), stopped and removed at the end. Each test asks for a fresh database (`create_database`)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

BACKENDS = pytest.mark.parametrize("catalog_backend", ["sqlite", "postgresql"], indirect=True)
"""Mark a test module or test to run on both catalog backends (the `catalog_url` fixture)."""

START_TIMEOUT = 60.0


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder (/usr/lib/postgresql/N/bin), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    def __init__(self) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (make system-deps installs Debian's postgresql)")
        self.bin = bindir
        self.root = Path(tempfile.mkdtemp(prefix="callvault-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.port = 5432  # only names the socket file in socket_dir: nothing listens on TCP
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            pwd.getpwnam("postgres")  # KeyError: Debian's package creates this user
            self._as = ["runuser", "-u", "postgres", "--"]
        self.process: subprocess.Popen[bytes] | None = None

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """initdb, then run the server."""
        self.socket_dir.mkdir()
        if self._as:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        self.run_server()

    def run_server(self) -> None:
        """Start the server on the existing cluster and wait until it accepts connections."""
        log = (self.root / "server.log").open("ab")
        if self._as:
            shutil.chown(self.root / "server.log", "postgres")
        self.process = subprocess.Popen(
            [
                *self._as,
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-k",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.root / 'server.log').read_text()[-2000:]}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", str(self.socket_dir), "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not become ready")
            time.sleep(0.05)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql:///{database}?host={self.socket_dir}&port={self.port}&user={self.user}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop_server(self) -> None:
        """Stop the server (a fast shutdown: open connections are cut), keeping the cluster."""
        if self.process is not None and self.process.poll() is None:
            # SIGINT to the postmaster itself (not to runuser): a fast shutdown, clients or not
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A started throwaway server, stopped and removed afterwards; the test is skipped (with what to
    install) where PostgreSQL is not installed. For the session's server and the tests that need one of
    their own (stopped or restarted mid-test, while the session's keeps running for the others)."""
    if postgres_bin() is None:  # as tests/janus_fixture.py does for Janus: say what to install
        pytest.skip("PostgreSQL is not installed: make system-deps (apt-get install -y postgresql)")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
