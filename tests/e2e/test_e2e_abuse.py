"""Rate limits and IP blocks with several gunicorn workers, and across a restart."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import R13, Server, start_server
from tests.ports import free_port
from tests.workers import until_answered_by

pytestmark = pytest.mark.slow


def start(tmp_path: Path, **env: str) -> Server:
    """A server of the test's own, with DEBUG on (answers name their worker)."""
    return start_server(tmp_path, **{"R13_FEATURE_DEBUG": "1", **env})


def hammer(
    srv: Server,
    total: int,
    threads: int,
    headers: dict[str, str] | None = None,
    path: str = "/-/ping",
    source: str = "127.0.0.1",
) -> tuple[Counter[int], set[str]]:
    """``total`` GETs from ``source`` over ``threads`` threads, a new connection each (so
    every worker may accept some): the statuses and the workers that answered."""
    statuses: Counter[int] = Counter()
    workers: set[str] = set()
    errors: list[BaseException] = []
    lock = threading.Lock()
    share = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]

    def run(n: int) -> None:
        mine: Counter[int] = Counter()
        seen = set()
        try:
            for _ in range(n):
                conn = http.client.HTTPConnection(
                    "127.0.0.1", srv.port, timeout=60, source_address=(source, 0)
                )
                conn.request("GET", path, headers={**(headers or {}), "Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                conn.close()
                mine[resp.status] += 1
                seen.add(resp.getheader("X-R13-Worker") or "")
        except BaseException as exc:  # reported by the caller's thread
            with lock:
                errors.append(exc)
        with lock:
            statuses.update(mine)
            workers.update(seen)

    pool = [threading.Thread(target=run, args=(n,)) for n in share]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    assert "" not in workers, "an answer named no worker (DEBUG is on in these servers)"
    return statuses, workers


def every_worker_up(srv: Server, workers: int) -> None:
    """Return once ``workers`` workers have answered: each has booted (however slowly).

    From an address of its own (127.0.0.254), so no limit under test counts these."""
    until_answered_by(workers, lambda: hammer(srv, 1, 1, source="127.0.0.254")[1].pop(), str)


# The limits under test get a window so long that no token comes back while a test runs
# (one every 2**32 ms / capacity: 36 min for 2000), however slow the machine; the bounds
# still allow for the tokens that the time the requests took refilled.
WINDOW_MS = 2**32
PLACEMENTS = 10  # fresh tries (new address or key) until the requests reach two workers


def refilled(elapsed_s: float, capacity: int) -> int:
    """Tokens a bucket of ``capacity`` per WINDOW_MS gets back in ``elapsed_s`` at most."""
    interval_ns = WINDOW_MS * 1_000_000 // capacity  # as r13core/ratelimit.py computes it
    return int(elapsed_s * 1e9) // interval_ns


def test_the_per_address_limit_is_exact_across_four_workers(
    tmp_path: Path, stop_later: list[Server]
) -> None:
    limit = 2000
    srv = start(
        tmp_path,
        R13_WORKERS="4",
        R13_THREADS="8",
        SECURITY_RATE_LIMIT_MAX=str(limit),
        SECURITY_RATE_LIMIT_WINDOW=str(WINDOW_MS),
        R13_BLOCK_LIMIT_VIOLATIONS="0",
    )
    stop_later.append(srv)
    every_worker_up(srv, 4)
    # Each try from a fresh loopback address (its own bucket), until two workers served it.
    for n in range(PLACEMENTS):
        began = time.monotonic()
        statuses, workers = hammer(srv, total=limit + 600, threads=32, source=f"127.0.0.{n + 2}")
        extra = refilled(time.monotonic() - began, limit)
        assert set(statuses) <= {200, 429}, statuses
        assert limit <= statuses[200] <= limit + extra, (statuses, extra)
        if len(workers) >= 2:
            break
    assert len(workers) >= 2, workers


def test_a_keys_own_limit_is_exact_across_workers(tmp_path: Path, stop_later: list[Server]) -> None:
    limit = 300
    srv = start(
        tmp_path,
        R13_WORKERS="4",
        R13_THREADS="8",
        R13_BLOCK_LIMIT_VIOLATIONS="0",
        SECURITY_RATE_LIMIT_WINDOW=str(WINDOW_MS),
    )
    stop_later.append(srv)
    every_worker_up(srv, 4)
    # Each try with a fresh key (its own bucket), until two workers served it.
    for n in range(PLACEMENTS):
        status, _, body = srv.request(
            "POST", "/_api/security/keys",
            {"id": f"limited-{n}", "permissions": "read", "rateLimit": limit, "expiresIn": "1h"},
            key=srv.admin_key,
        )  # fmt: skip
        assert status == 201, body
        secret = json.loads(body)["key"]
        began = time.monotonic()
        statuses, workers = hammer(srv, 450, 16, {"Authorization": f"Bearer {secret}"})
        extra = refilled(time.monotonic() - began, limit)
        assert set(statuses) <= {200, 429}, statuses
        assert limit <= statuses[200] <= limit + extra, (statuses, extra)
        assert statuses[200] + statuses[429] == 450
        if len(workers) >= 2:
            break
    assert len(workers) >= 2, workers


def across_workers(
    srv: Server, headers: dict[str, str] | None = None, path: str = "/-/ping"
) -> tuple[Counter[int], set[str]]:
    """Requests until at least two workers have answered (gthread workers accept unevenly;
    one may still be starting): every status, and the workers. Bounded by time, not by a
    count a slow machine could use up."""
    statuses: Counter[int] = Counter()
    workers: set[str] = set()
    deadline = time.monotonic() + 120
    while len(workers) < 2:
        assert time.monotonic() < deadline, f"only workers {workers} answered: {statuses}"
        got, seen = hammer(srv, 30, 10, headers, path)
        statuses.update(got)
        workers |= seen
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
    # A block of a day: it cannot run out while the test runs, however slowly.
    srv = start(
        tmp_path, R13_WORKERS="3", R13_BLOCK_AUTH_FAILURES="5", R13_BLOCK_DURATION="86400000"
    )
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
    return across_workers(srv, {"Authorization": f"Bearer {secret}"}, "/-/whoami")
