"""Start and stop the servers the HTTP benches load: r13 and Verdaccio, on loopback.

Everything started here is stopped here, by PID (SIGTERM, then SIGKILL of the process
group it was started in). r13 runs as ``r13 serve`` from this interpreter's venv on a free
port with a fresh data dir and the request limit lifted (a benchmark is not an attack).
Verdaccio 6.8.0 is installed with ``npm ci`` from bench/verdaccio/ (package.json pins
it; the lockfile pins the rest; its ``node-fetch`` override replaces a dependency tag that
no longer exists on the npm registry) into a work dir, once, and started with
bench/verdaccio/config.yaml.in; it needs Node 20+ and npm.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import HarnessError

REPO = Path(__file__).resolve().parent.parent
R13 = Path(sys.executable).parent / "r13"
VERDACCIO = REPO / "bench" / "verdaccio"


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like an exception, so every ``finally`` stops its server."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ping(url: str, alive: Callable[[], bool], timeout: float = 120.0) -> bool:
    """Poll ``GET /-/ping`` until it answers 200, the process dies, or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        try:
            with urllib.request.urlopen(url + "/-/ping", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


@dataclass
class Running:
    """One server this module started."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    token: str | None = None
    data: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL its process group if it will not go. The exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def r13_env(data: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a benchmarked r13: loopback, a free port, the limit lifted."""
    return {
        **os.environ,
        "R13_DATA": str(data),
        "REGISTRY_HOST": "127.0.0.1",
        "REGISTRY_PORT": str(port),
        "R13_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SECURITY_RATE_LIMIT_MAX": os.environ.get("SECURITY_RATE_LIMIT_MAX", "2147483647"),
        **extra,
    }


def start(
    name: str,
    argv: list[str],
    env: dict[str, str],
    url: str,
    log: Path,
    timeout: float = 120.0,
    cwd: Path = REPO,
) -> Running:
    """Start ``argv`` in a session of its own (in ``cwd``) and wait until ``url`` answers
    /-/ping."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = Running(name, url, proc, log)
    if not wait_ping(url, lambda: proc.poll() is None, timeout):
        running.stop()
        tail = log.read_text(errors="replace")[-2000:]
        raise HarnessError(f"{name} did not answer {url}/-/ping; its log ends:\n{tail}")
    return running


def start_r13(
    data: Path,
    env: dict[str, str] | None = None,
    *,
    argv: list[str] | None = None,
    port: int | None = None,
    cwd: Path = REPO,
) -> Running:
    """``r13 serve`` (or ``argv``: another WSGI entry under the same gunicorn config), with
    ``env`` added to :func:`r13_env`, started in ``cwd`` (gunicorn imports its config
    module and app with the working directory first on ``sys.path``)."""
    if not R13.exists():
        raise HarnessError(f"{R13} not found: run `make build`")
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    running = start(
        "r13",
        argv or [str(R13), "serve"],
        r13_env(data, port, **(env or {})),
        url,
        data.parent / f"r13-{port}.log",
        cwd=cwd,
    )
    running.data = data
    key = data / "admin.key"
    if key.exists():
        running.token = key.read_text().strip() or None
    return running


def install_verdaccio(workdir: Path) -> Path:
    """``npm ci`` of bench/verdaccio/ into ``workdir`` (once); the verdaccio entry script."""
    entry = workdir / "node_modules" / "verdaccio" / "bin" / "verdaccio"
    lock = workdir / "package-lock.json"
    ours = (VERDACCIO / "package-lock.json").read_bytes()
    if entry.exists() and lock.exists() and lock.read_bytes() == ours:
        return entry
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise HarnessError("Verdaccio needs Node 20+ and npm on PATH")
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(VERDACCIO / name, workdir / name)
    run = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if run.returncode != 0 or not entry.exists():
        raise HarnessError(f"npm ci of Verdaccio failed: {run.stderr.strip()[-800:]}")
    return entry


def start_verdaccio(workdir: Path) -> Running:
    """Verdaccio on a free port with a user ``bench``; ``token`` is that user's JWT."""
    entry = install_verdaccio(workdir)
    port = free_port()
    config = workdir / "config.yaml"
    template = (VERDACCIO / "config.yaml.in").read_text()
    config.write_text(template.replace("@DIR@", str(workdir)).replace("@PORT@", str(port)))
    url = f"http://127.0.0.1:{port}"
    node = shutil.which("node") or "node"
    running = start(
        "verdaccio", [node, str(entry), "--config", str(config)], dict(os.environ), url,
        workdir / "verdaccio.log",
    )  # fmt: skip
    try:
        running.token = _verdaccio_token(url)
    except (OSError, HarnessError):
        running.stop()
        raise
    return running


def _verdaccio_token(url: str) -> str:
    """Create the user ``bench`` (or log in if a previous run made it): its token."""
    body = json.dumps({"name": "bench", "password": "bench-pass-1"}).encode()
    path = url + "/-/user/org.couchdb.user:bench"
    for auth in ({}, {"Authorization": "Basic YmVuY2g6YmVuY2gtcGFzcy0x"}):  # bench:bench-pass-1
        headers = {"Content-Type": "application/json", **auth}
        req = urllib.request.Request(path, data=body, method="PUT", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                token = json.loads(r.read()).get("token")
                if token:
                    return str(token)
        except urllib.error.HTTPError as exc:
            if exc.code not in (401, 409):
                raise HarnessError(f"Verdaccio refused the bench user: HTTP {exc.code}") from None
    raise HarnessError("Verdaccio gave no token for the bench user")
