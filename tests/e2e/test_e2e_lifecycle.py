"""`r13 serve` start-up and shutdown: first start, restart, SIGTERM and SIGINT."""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import pytest

from tests.e2e.conftest import Server
from tests.ports import free_port

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_first_start_restart_and_clean_stop(tmp_path: Path, stop_with: signal.Signals) -> None:
    srv = Server(data=tmp_path / "fresh" / "data", port=free_port(), log=tmp_path / "log")
    srv.start()
    key_file = srv.data / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first_log = srv.log.read_text()
    assert f"//127.0.0.1:{srv.port}/:_authToken={srv.admin_key}" in first_log
    assert srv.request("GET", "/-/whoami", key=srv.admin_key)[0] == 200

    assert srv.proc is not None
    srv.proc.send_signal(stop_with)
    assert srv.proc.wait(timeout=30) == 0
    assert "Shutting down: Master" in srv.log.read_text()

    srv.start()  # a restart keeps the key and prints no new one
    try:
        assert srv.admin_key == key_file.read_text().strip()
        assert srv.log.read_text().count("_authToken=") == 1
        assert srv.request("GET", "/-/whoami", key=srv.admin_key)[0] == 200
    finally:
        assert srv.stop() == 0
