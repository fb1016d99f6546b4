"""How `r13 serve` starts (app/cli/serve_cmd.py, app/cli/serve_process.py): gunicorn's
master is the `r13 serve` process itself, the data dir is prepared in a child that
exits (what it loaded does not stay in the master the workers fork from), and the
instance lock the child took stays the master's."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from r13core.locks import InstanceLock
from tests.ports import free_port, wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _env(data: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "R13_DATA": str(data),
        "REGISTRY_HOST": "127.0.0.1",
        "REGISTRY_PORT": str(port),
        "R13_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "R13_WORKERS": "2",
        **extra,
    }


def _ping(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ping", timeout=60) as resp:
        return bool(resp.status == 200)


def _maps_cryptography(pid: int) -> bool:
    with open(f"/proc/{pid}/maps") as maps:
        return any("/cryptography/" in line for line in maps)


def test_first_start_serves_from_the_r13_process_without_what_preparing_loaded(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    for _ in range(5):  # another process may take the port before gunicorn binds it
        port = free_port()
        log = tmp_path / f"serve-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve"],
                cwd=ROOT, env=_env(data, port), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        if wait_until_serving(proc, port, log, functools.partial(_ping, port)):
            break
    else:
        raise RuntimeError("every port tried was taken")
    try:
        # The first start made the admin key and the signing key (in the child) ...
        text = log.read_text()
        assert "created admin key" in text and "created signing key" in text
        assert (data / "admin.key").is_file()
        # ... and the process serving is the one started: no exec, gunicorn's master.
        master = psutil.Process(proc.pid)
        assert master.cmdline()[1:] == ["-m", "app.cli", "serve"]
        deadline = time.monotonic() + 120  # the second worker may still be forking
        while len(workers := master.children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2
        # Making the signing key loaded the cryptography library; neither the master
        # nor the workers forked from it hold it (they load it on first use).
        assert not any(_maps_cryptography(p.pid) for p in [master, *workers])
        # The instance lock the preparing child took is the master's now.
        other = InstanceLock(data)
        assert other.try_exclusive() is False
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    # Stopped: nobody holds it any more.
    with InstanceLock(data) as free:
        assert free.try_exclusive() is True


def test_a_start_that_cannot_prepare_exits_with_its_reason(tmp_path: Path) -> None:
    # R13_AUTO_MIGRATE=0 over a data dir whose schema is behind: refused, said once.
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=ROOT, env=_env(tmp_path / "data", port, R13_AUTO_MIGRATE="0"),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("run `r13 db migrate` first") == 1, done.stderr
    with InstanceLock(tmp_path / "data") as free:
        assert free.try_exclusive() is True  # the failed start left no lock behind
