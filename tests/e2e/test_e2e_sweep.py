"""The periodic sweep in a real server (gunicorn, 2 workers): old orphans go, young ones stay.

The start-up sweep is exercised by tests/e2e/test_e2e_crash.py; the election of
one sweeping worker by tests/test_registry_sweeper.py (real processes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from r13core.locks import InstanceLock
from tests.e2e.conftest import Server
from tests.e2e.publish_body import publish_body, tarball
from tests.ports import free_port

pytestmark = pytest.mark.slow


def test_a_running_server_holds_the_instance_lock_and_sweeps_old_orphans(tmp_path: Path) -> None:
    srv = Server(data=tmp_path / "data", port=free_port(), log=tmp_path / "server.log")
    srv.extra_env.update({"R13_SWEEP_INTERVAL": "200", "R13_SWEEP_MIN_AGE": "3600000"})
    srv.start()
    try:
        # The running server holds the instance lock: no other `r13 serve` sweeps alone.
        assert not InstanceLock(srv.data).try_exclusive()
        body = publish_body("kept", "1.0.0", tarball("kept", "1.0.0"))
        status, _, answer = srv.request("PUT", "/kept", body, key=srv.key("write"))
        assert status == 201, answer
        blobs = srv.data / "blobs"
        young = blobs / "tmp" / "young.1.1.tmp"  # could be a publish in flight
        young.write_bytes(b"being written")
        old = blobs / "sha512" / "ab" / "cd" / ("ab" + "cd" + "0" * 124)
        old.parent.mkdir(parents=True, exist_ok=True)
        old.write_bytes(b"a blob no row refers to")
        then = time.time() - 7200
        os.utime(old, (then, then))
        deadline = time.monotonic() + 120  # generous: a loaded machine sweeps late
        while old.exists():
            assert time.monotonic() < deadline, "the running server never swept"
            time.sleep(0.1)
        assert young.exists()
        status, _, _ = srv.request("GET", "/kept/-/kept-1.0.0.tgz", key=srv.key("read"))
        assert status == 200
    finally:
        assert srv.stop() == 0
    with InstanceLock(srv.data) as after:
        assert after.try_exclusive()  # released with the last server process
