"""Rate limits and IP blocks with several gunicorn workers, and across a restart."""

from __future__ import annotations

import http.client
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import R13, Server, free_port

pytestmark = pytest.mark.slow


def start(tmp_path: Path, **env: str) -> Server:
    srv = Server(data=tmp_path / "data", port=free_port(), log=tmp_path / "server.log")
    srv.extra_env = {"R13_FEATURE_DEBUG": "1", **env}
    srv.start()
    return srv


@pytest.fixture
def stop_later() -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for srv in servers:
        srv.stop()


def hammer(
    srv: Server,
    total: int,
    threads: int,
    headers: dict[str, str] | None = None,
    path: str = "/-/ping",
) -> tuple[Counter[int], set[str]]:
    """``total`` GETs over ``threads`` threads, a connection each (so every worker accepts
    some): statuses and the workers that answered."""
    statuses: Counter[int] = Counter()
    workers: set[str] = set()
    lock = threading.Lock()
    share = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]

    def run(n: int) -> None:
        mine: Counter[int] = Counter()
        seen = set()
        for _ in range(n):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
            conn.request("GET", path, headers={**(headers or {}), "Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            conn.close()
            mine[resp.status] += 1
            seen.add(resp.getheader("X-R13-Worker") or "")
        with lock:
            statuses.update(mine)
            workers.update(seen)

    pool = [threading.Thread(target=run, args=(n,)) for n in share]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses, workers


def test_the_per_address_limit_is_exact_across_four_workers(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    limit = 2000
    srv = start(
        tmp_path,
        R13_WORKERS="4",
        R13_THREADS="8",
        SECURITY_RATE_LIMIT_MAX=str(limit),
        SECURITY_RATE_LIMIT_WINDOW="3600000",
        R13_BLOCK_LIMIT_VIOLATIONS="0",
    )
    stop_later.append(srv)
    statuses, workers = hammer(srv, total=limit + 600, threads=32)
    assert set(statuses) <= {200, 429}
    # One token comes back every 1.8 s: a few may be admitted while the test runs.
    assert abs(statuses[200] - limit) <= limit // 100, statuses
    assert len(workers) >= 2, workers


def test_a_keys_own_limit_is_exact_across_workers(tmp_path: Path, stop_later: list[Server]) -> None:
    srv = start(tmp_path, R13_WORKERS="4", R13_THREADS="8", R13_BLOCK_LIMIT_VIOLATIONS="0")
    stop_later.append(srv)
    status, _, body = srv.request(
        "POST", "/_api/security/keys",
        {"id": "limited", "permissions": "read", "rateLimit": 300, "expiresIn": "1h"},
        key=srv.admin_key,
    )  # fmt: skip
    assert status == 201, body
    import json

    secret = json.loads(body)["key"]
    statuses, workers = hammer(srv, 450, 16, {"Authorization": f"Bearer {secret}"})
    assert statuses[200] == 300 and statuses[429] == 150, statuses
    assert len(workers) >= 2


def across_workers(srv: Server, rounds: int = 20) -> tuple[Counter[int], set[str]]:
    """Requests until at least two workers have answered (gthread workers accept unevenly)."""
    statuses: Counter[int] = Counter()
    workers: set[str] = set()
    for _ in range(rounds):
        got, seen = hammer(srv, 30, 10)
        statuses.update(got)
        workers |= seen
        if len(workers) >= 2:
            break
    return statuses, workers


def r13(srv: Server, *args: str) -> str:
    out = subprocess.run(
        [str(R13), "--data", str(srv.data), *args],
        env=srv.env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout


def test_auth_failures_block_in_every_worker_across_a_restart_until_unblocked(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    srv = start(tmp_path, R13_WORKERS="3", R13_BLOCK_AUTH_FAILURES="5", R13_BLOCK_DURATION="600000")
    stop_later.append(srv)
    bad = {"Authorization": "Bearer r13_not_a_key"}
    statuses, _ = hammer(srv, 5, 5, bad, "/-/whoami")
    assert statuses == Counter({401: 5})
    statuses, _ = hammer(srv, 1, 1, bad, "/-/whoami")  # the sixth failure crosses the threshold
    statuses, workers = across_workers(srv)
    assert set(statuses) == {403} and len(workers) >= 2, (statuses, workers)
    assert "127.0.0.1" in r13(srv, "security", "blocks")

    srv.stop()
    srv.start(ready=(403,))
    statuses, _ = hammer(srv, 20, 4)
    assert statuses == Counter({403: 20})  # kept across the restart

    assert "unblocked 127.0.0.1" in r13(srv, "security", "unblock", "127.0.0.1")
    statuses, workers = across_workers(srv)
    assert set(statuses) == {200} and len(workers) >= 2, (statuses, workers)
    status, _, body = srv.request("GET", "/_api/security/audit?action=ip.block", key=srv.admin_key)
    assert status == 200 and b"127.0.0.1" in body


def test_revocation_and_expiry_reach_every_worker_on_the_next_request(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    import json
    import sys

    # The workers' keys read a clock this test moves (tests/e2e/clocked_app.py).
    skew = tmp_path / "clock-skew"
    srv = Server(data=tmp_path / "data", port=free_port(), log=tmp_path / "server.log")
    srv.extra_env = {"R13_FEATURE_DEBUG": "1", "R13_WORKERS": "3", "R13_TEST_CLOCK": str(skew)}
    srv.command = [sys.executable, "-m", "tests.e2e.clocked_app"]
    srv.start()
    stop_later.append(srv)
    secrets = {}
    for key_id, expires in (("revoke-me", "1h"), ("short-lived", "1h"), ("long-lived", "2d")):
        status, _, body = srv.request(
            "POST", "/_api/security/keys",
            {"id": key_id, "permissions": "read", "expiresIn": expires}, key=srv.admin_key,
        )  # fmt: skip
        assert status == 201, body
        secrets[key_id] = json.loads(body)["key"]
    for secret in secrets.values():  # warm every worker's cache
        statuses, workers = across_workers_with(srv, secret)
        assert set(statuses) == {200} and len(workers) >= 2
    r13(srv, "keys", "revoke", "revoke-me")  # another process, straight on the data dir
    statuses, workers = across_workers_with(srv, secrets["revoke-me"])
    assert set(statuses) == {401} and len(workers) >= 2, statuses
    skew.write_text(str(3600 + 60))  # every worker's clock: an hour and a minute later
    statuses, workers = across_workers_with(srv, secrets["short-lived"])
    assert set(statuses) == {401} and len(workers) >= 2, statuses
    statuses, workers = across_workers_with(srv, secrets["long-lived"])
    assert set(statuses) == {200} and len(workers) >= 2, statuses


def across_workers_with(srv: Server, secret: str) -> tuple[Counter[int], set[str]]:
    statuses: Counter[int] = Counter()
    workers: set[str] = set()
    for _ in range(20):
        got, seen = hammer(srv, 30, 10, {"Authorization": f"Bearer {secret}"}, "/-/whoami")
        statuses.update(got)
        workers |= seen
        if len(workers) >= 2:
            break
    return statuses, workers
