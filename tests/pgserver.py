"""A real PostgreSQL server for the tests and benchmarks, started from a temporary directory.

PostgreSQL refuses to run as root, so :class:`PostgresServer` runs ``initdb`` and
``pg_ctl`` as the ``postgres`` user in a fresh directory that user owns, listening on
127.0.0.1 on a port the kernel never hands out (tests/ports.py) with its socket in that
directory; connections are trusted (loopback only, a throwaway cluster). Each test gets
a database of its own (:meth:`PostgresServer.create_database`).

``python -m tests.pgserver`` (tests/run.sh runs it) installs what the tests need when it
is missing: Debian's PostgreSQL server and nginx (the load balancer in front of several
r13 nodes), without starting either as a system service.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tests.ports import free_port

_BIN_GLOB: Final = "/usr/lib/postgresql/*/bin"
NGINX: Final = Path("/usr/sbin/nginx")
_POLICY: Final = Path("/usr/sbin/policy-rc.d")


def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (the one holding initdb), or None."""
    found = [Path(p) for p in glob.glob(_BIN_GLOB) if (Path(p) / "initdb").exists()]
    if not found:
        return None
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)


def apt_install(*packages: str) -> None:
    """Install Debian's ``packages`` without starting any service they bring.

    RuntimeError when apt cannot run here (no apt-get, or not root), naming the command.
    """
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise RuntimeError(
            f"{' '.join(packages)} missing; install Debian's packages "
            f"(apt-get install -y {' '.join(packages)}, as root)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", *packages]
    # No service may start on its own: policy-rc.d answering 101 forbids it while apt runs.
    own_policy = not _POLICY.exists()
    if own_policy:
        _POLICY.write_text("#!/bin/sh\nexit 101\n")
        _POLICY.chmod(0o755)
    try:
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run([apt, "update"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
    finally:
        if own_policy:
            _POLICY.unlink(missing_ok=True)


def ensure_installed() -> tuple[Path, Path]:
    """PostgreSQL's bin directory and nginx, installed from Debian first when missing."""
    missing = []
    if pg_bindir() is None:
        missing.append("postgresql")
    if not NGINX.exists():
        missing.append("nginx")
    if missing:
        try:
            apt_install(*missing)
        except RuntimeError as exc:
            raise SystemExit(f"tests: {exc}") from None
    bindir = pg_bindir()
    if bindir is None or not NGINX.exists():
        raise SystemExit("tests: apt ran but PostgreSQL's initdb or nginx is still missing")
    return bindir, NGINX


def _postgres_user() -> str | None:
    """Who runs the server's commands: the postgres user when we are root, else ourselves."""
    return "postgres" if os.geteuid() == 0 else None


class PostgresServer:
    """One throwaway PostgreSQL cluster: ``start()``, ``create_database()``, ``stop()``.

    ``fsync`` is off by default (the tests kill r13 nodes, never the database); the
    benchmarks turn it on so PostgreSQL pays for durability as SQLite does.
    """

    def __init__(self, *, fsync: bool = False, max_connections: int = 300) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: run python -m tests.pgserver")
        self.bindir: Path = bindir
        self.fsync = fsync
        self.max_connections = max_connections
        self.dir = Path(tempfile.mkdtemp(prefix="r13-pg-"))
        self.data = self.dir / "data"
        self.port = 0
        self._names = itertools.count(1)
        self._pid = 0

    # -- lifecycle --

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        user = _postgres_user()
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.dir,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)
        done = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.dir}",
                f"-c max_connections={self.max_connections}",
                f"-c fsync={'on' if self.fsync else 'off'}",
                f"-c synchronous_commit={'on' if self.fsync else 'off'}",
                f"-c full_page_writes={'on' if self.fsync else 'off'}",
                "-c shared_buffers=128MB",
                "-c log_min_messages=warning",
            ]
        )
        for _ in range(20):  # another process may take the port between pick and bind
            self.port = free_port()
            done = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"),
                "-o", f"-p {self.port} {options}", "-w", "-t", "60", "start",
            )  # fmt: skip
            if done.returncode == 0:
                self._pid = int((self.data / "postmaster.pid").read_text().split()[0])
                return self
            time.sleep(0.2)
        log = (self.dir / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"PostgreSQL did not start: {done.stderr.strip()}\n{log}")

    def stop(self) -> None:
        if self._pid:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            self._pid = 0
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self) -> int:
        """The postmaster's PID (0 when stopped)."""
        return self._pid

    # -- databases --

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql (autocommit; CREATE DATABASE needs it); its output."""
        done = subprocess.run(
            ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", self.url(database),
             "-c", sql],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, prefix: str = "r13") -> str:
        """A new empty database; its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`, ending its open sessions."""
        name = url.rsplit("/", 1)[1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """A started server, stopped (and its directory removed) on exit."""
    server = PostgresServer(fsync=fsync)
    try:
        yield server.start()
    finally:
        server.stop()


if __name__ == "__main__":
    bindir, nginx = ensure_installed()
    print(f"PostgreSQL: {bindir}; nginx: {nginx}", file=sys.stderr)
