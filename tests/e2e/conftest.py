"""A real r13 (`r13 serve`: gunicorn, gevent worker, 2 workers) on a free port; client sandboxes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.clients import ensure_clients
from tests.e2e.clients import npm as machine_npm
from tests.ports import NeverAnswered, free_port, wait_until_serving

R13 = Path(sys.executable).parent / "r13"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    """One running `r13 serve` and what the tests need to talk to it."""

    data: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    admin_key: str = ""
    _keys: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    # What starts it: `r13 serve`, or a test's own entry point doing the same.
    command: list[str] = field(default_factory=lambda: [str(R13), "serve"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "R13_WORKERS": "2",
            "R13_THREADS": "4",
            "REGISTRY_HOST": "127.0.0.1",
            "REGISTRY_PORT": str(self.port),
            "R13_DATA": str(self.data),
            "R13_PUBLIC_URL": self.url,
            # The shared server serves every e2e test from 127.0.0.1: lift the default
            # 1000 per 15 min and keep loopback from being blocked by the bad-input tests.
            "SECURITY_RATE_LIMIT_MAX": "2147483647",
            "R13_AUTH_RATE_LIMIT_MAX": "2147483647",
            "R13_BLOCK_AUTH_FAILURES": "0",
            "R13_BLOCK_LIMIT_VIOLATIONS": "0",
            "R13_BLOCK_ANOMALIES": "0",
            **self.extra_env,
        }

    def start(self, timeout: float = 120.0, *, ready: tuple[int, ...] = (200,)) -> None:
        """Start it; return once it answers ``GET /-/ping`` with a status in ``ready``.

        Only an answer from this server counts: its master must hold the port
        (tests/ports.py). If another process took the port before the server could
        bind it, a first start moves to a new port (removing the data dir the failed
        start made); a restart keeps its port, which clients' config names, and fails.
        """
        first_start = self.proc is None
        made_data = not self.data.exists()
        for _ in range(5):
            if self._launch(timeout, ready):
                self.admin_key = (self.data / "admin.key").read_text().strip()
                return
            if not first_start:
                raise RuntimeError(f"port {self.port} was taken: {self.log.read_text()[-3000:]}")
            if made_data:
                shutil.rmtree(self.data, ignore_errors=True)
            self.port = free_port()
        raise RuntimeError(f"every port tried was taken: {self.log.read_text()[-3000:]}")

    def _launch(self, timeout: float, ready: tuple[int, ...]) -> bool:
        """One launch: True once it answers, False if its port was taken; raises otherwise."""
        logged = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            # A session of its own: the crash test kills the whole process group.
            self.proc = subprocess.Popen(
                self.command,
                env=self.env(),
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def answers() -> bool:
            try:
                with urllib.request.urlopen(self.url + "/-/ping", timeout=30) as r:
                    return r.status in ready
            except urllib.error.HTTPError as e:  # e.g. 403 while this address is blocked
                return e.code in ready

        try:
            return wait_until_serving(
                self.proc, self.port, self.log, answers, timeout=timeout, log_from=logged
            )
        except NeverAnswered:
            self.stop()
            raise

    def stop(self) -> int | None:
        """SIGTERM by PID and wait: gunicorn stops its workers and exits."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=120)  # generous: a loaded machine stops slowly
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise

    def kill(self) -> None:
        """SIGKILL the master and every worker at once (a crash)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def key(self, perm: str) -> str:
        """A key with ``perm`` made by `r13 keys create` (one per permission per server)."""
        if perm not in self._keys:
            out = subprocess.run(
                [str(R13), "--data", str(self.data), "keys", "create", "--id", f"e2e-{perm}",
                 "--perm", perm],
                env=self.env(), capture_output=True, text=True, check=True, timeout=60,
            )  # fmt: skip
            self._keys[perm] = out.stdout.strip().splitlines()[-1]
        return self._keys[perm]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request; (status, headers with lower-case names, body) whatever the status."""
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, _lower(r.headers.items()), r.read()
        except urllib.error.HTTPError as e:
            return e.code, _lower(e.headers.items()), e.read()


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


def start_server(tmp_path: Path, **env: str) -> Server:
    """A server of the test's own on ``tmp_path/data`` with ``env``, once it answers."""
    srv = Server(data=tmp_path / "data", port=free_port(), log=tmp_path / "server.log")
    srv.extra_env = env
    srv.start()
    return srv


@pytest.fixture
def stop_later() -> Iterator[list[Server]]:
    """Servers a test appends here are stopped when it ends, whatever its outcome."""
    servers: list[Server] = []
    yield servers
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("r13-server")
    srv = Server(data=root / "data", port=free_port(), log=root / "server.log")
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log.read_text()[-3000:]
    # Every error left as a JSON answer: nothing reached gunicorn as an exception.
    assert "Traceback" not in srv.log.read_text(), srv.log.read_text()[-5000:]


@pytest.fixture(scope="session")
def clients() -> dict[str, Path]:
    return {"npm": machine_npm(), **ensure_clients()}


_names = count(1)


@dataclass
class Sandbox:
    """An isolated HOME, npm cache and config, and project directories, for one test."""

    root: Path
    server: Server
    token: str
    clients: dict[str, Path]
    npm: str = "npm"  # which npm the helpers run: "npm" (the machine's 11) or "npm10"

    def env(self) -> dict[str, str]:
        home = self.root / "home"
        keep = {k: v for k, v in os.environ.items() if not k.lower().startswith(("npm_", "yarn_"))}
        return {
            **keep,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "npm_config_userconfig": str(home / ".npmrc"),
            "npm_config_cache": str(self.root / "npm-cache"),
            "npm_config_update_notifier": "false",
            "npm_config_fund": "false",
            "YARN_CACHE_FOLDER": str(self.root / "yarn-cache"),
            "BUN_INSTALL_CACHE_DIR": str(self.root / "bun-cache"),
            "PATH": os.pathsep.join([str(self.clients["pnpm"].parent), os.environ.get("PATH", "")]),
            "CI": "true",
        }

    def npmrc(self, *, always_auth: bool = False) -> str:
        """registry= and the key; ``always_auth`` for yarn 1 (npm 11 warns about it)."""
        host = f"127.0.0.1:{self.server.port}"
        lines = [f"registry={self.server.url}/", f"//{host}/:_authToken={self.token}"]
        if always_auth:
            lines.append("always-auth=true")
        return "\n".join(lines) + "\n"

    def project(
        self, name: str, package: dict[str, Any] | None = None, *, always_auth: bool = False
    ) -> Path:
        """A directory with package.json and the registry's .npmrc."""
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        pkg = package if package is not None else {"name": name, "version": "1.0.0"}
        (d / "package.json").write_text(json.dumps(pkg, indent=2))
        (d / ".npmrc").write_text(self.npmrc(always_auth=always_auth))
        return d

    def run(
        self, tool: str, *args: str, cwd: Path, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            [str(self.clients[tool]), *args],
            cwd=cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"{tool} {' '.join(args)} failed ({out.returncode}):\n"
                f"{out.stdout[-4000:]}\n{out.stderr[-4000:]}\n"
                f"server log:\n{self.server.log.read_text()[-3000:]}"
            )
        return out

    def unique(self, stem: str) -> str:
        return f"{stem}-{os.getpid()}-{next(_names)}"


@pytest.fixture
def sandbox(tmp_path: Path, server: Server, clients: dict[str, Path]) -> Sandbox:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".npmrc").write_text("")
    return Sandbox(tmp_path, server, server.key("write"), clients)


# The README supports npm 10 and 11: the npm scenarios run with both.
NPMS = {"npm11": "npm", "npm10": "npm10"}


@pytest.fixture(params=list(NPMS.values()), ids=list(NPMS))
def npm(request: pytest.FixtureRequest, sandbox: Sandbox) -> str:
    """The npm under test (the sandbox's helpers use it too), checked to be that major."""
    tool: str = request.param
    major = "10." if tool == "npm10" else "11."
    out = sandbox.run(tool, "--version", cwd=sandbox.root)
    assert out.stdout.strip().startswith(major), out.stdout
    sandbox.npm = tool
    return tool
