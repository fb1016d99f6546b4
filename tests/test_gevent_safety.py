"""The gevent worker's rules, run in a real gevent-patched process (tests/gevent_probe.py).

Under gunicorn's gevent worker every request is a greenlet of one OS thread. A wait in
C or in the kernel (SQLite's busy handler, a blocking flock) stops all of them; a yield
inside a write transaction lets another greenlet of the same worker reach SQLite while
the lock is taken. These tests run the storage and the registry in a subprocess patched
like that worker and check what happened, never how long it took.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def probe(scenario: str, data: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.gevent_probe", scenario, str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["patched"] is True  # the scenario really ran under gevent's patches
    return result


def test_two_greenlets_writing_at_once_both_commit_without_a_timeout(tmp_path: Path) -> None:
    # The first yields inside its transaction; the second waits at the write gate, on
    # the hub, instead of in SQLite's busy handler (which would stop the first for good).
    result = probe("two_writers", tmp_path)
    assert result["errors"] == []
    assert result["rows"] == [["first", 1], ["first", 2], ["second", 1]]


def test_without_the_write_gate_the_second_writer_times_out(tmp_path: Path) -> None:
    # The control: the same two greenlets with the gate and the cooperative BEGIN taken
    # away. The second waits in C, the first cannot finish, the busy timeout fires.
    result = probe("two_writers_bare", tmp_path)
    assert result["errors"] == ["second: database is locked"]
    assert ["second", 1] not in result["rows"]


def test_a_write_waits_for_another_process_on_the_hub(tmp_path: Path) -> None:
    # Another process holds SQLite's write lock: the writer greenlet waits, other
    # greenlets keep running (the ticker advanced), and it commits once the lock is free.
    result = probe("sqlite_other_process", tmp_path)
    assert result["ran"] and result["ticks_while_held"] >= 50
    assert result["done_while_held"] == []
    assert result["done"] == ["ok"]
    assert result["rows"] == ["holder", "waiter"]


def test_a_packument_read_never_fails_while_a_writer_waits_for_another_process(
    tmp_path: Path,
) -> None:
    # The bench's lone 500 on GET /<package> during seeding: a greenlet waiting in its
    # cooperative BEGIN for another worker's write left the worker's shared connection
    # at busy_timeout 0, so a read saving its render meanwhile failed with "database is
    # locked". Now the read waits (on the hub, behind the writer) and both commit.
    result = probe("read_while_a_writer_waits", tmp_path)
    assert result["waiting"]
    assert result["busy_timeout_seen"] == 3000  # never the waiting writer's 0
    assert result["reads_while_held"] == []
    assert result["ran"] and result["ticks_while_held"] >= 50
    assert result["reads"] == ["@probe/read"]
    assert result["writes"] == ["ok"]
    assert result["renders"] == [["@probe/read", "abbreviated"], ["@probe/read", "full"]]


def test_a_publish_waits_for_another_process_sweep_on_the_hub(tmp_path: Path) -> None:
    # The blob store's flock, held exclusively elsewhere (a sweep): the publish's shared
    # hold waits without blocking the worker's other greenlets.
    result = probe("blob_lock_other_process", tmp_path)
    assert result["ran"] and result["ticks_while_held"] >= 50
    assert result["done_while_held"] == []
    assert result["done"] == ["ok"]


def test_a_worker_waits_for_the_instance_lock_on_the_hub(tmp_path: Path) -> None:
    # `r13 serve` holds it exclusively for its start-up sweep; a worker's shared hold waits.
    result = probe("instance_lock_other_process", tmp_path)
    assert result["ran"] and result["ticks_while_held"] >= 50
    assert result["done_while_held"] == []
    assert result["done"] == ["ok"] and result["held"] is True


def test_a_leader_election_never_blocks_the_hub(tmp_path: Path) -> None:
    # Another process leads (the sampler's or the sweeper's lock): this worker's election
    # polls without blocking, and takes over once the other lets go.
    result = probe("leader_elsewhere", tmp_path)
    assert result["ran"] and result["ticks_while_held"] >= 50
    assert result["led_while_held"] is False
    assert result["leads_after"] is True
    assert result["leading_after_stop"] is False


def test_no_write_transaction_yields_to_the_hub(tmp_path: Path) -> None:
    # Publishes (tarball written and fsynced, then one transaction), key creation, audit
    # events, usage flushes and record changes from five greenlets at once, under a
    # tracer of every greenlet switch: none leaves a greenlet inside a transaction.
    result = probe("writes_never_yield", tmp_path)
    assert result["violations"] == []
    assert result["hook_deliveries"] == 8  # one per publish, queued in its transaction
    assert result["switches"] > 20  # the greenlets did interleave
    assert result["packages"] == 8
    # 20 writes, the webhook's creation, and the signing key r13 makes (and audits) at the
    # first publish.
    assert result["audit_events"] == 22 and result["audit_broken_at"] is None


def test_the_switch_tracer_sees_a_yield_inside_a_transaction(tmp_path: Path) -> None:
    # The tracer's control: one extra greenlet yields inside its transaction.
    result = probe("writes_yield_control", tmp_path)
    assert len(result["violations"]) == 1 and "yielder" in result["violations"][0]
    assert result["packages"] == 8


def test_proxied_fetches_wait_on_the_hub_and_never_yield_inside_a_transaction(
    tmp_path: Path,
) -> None:
    # Nine greenlets miss three upstream packages (packument, then tarball) at once while
    # the upstream holds its answers: the hub keeps running other greenlets, each thing is
    # asked of the upstream once (single flight), and caching them yields in no transaction.
    result = probe("uplink_never_yields", tmp_path)
    assert result["held"] is True
    assert result["ticks_while_waiting"] >= 10
    assert result["violations"] == []
    assert result["got"] == sorted(f"{n}:True" for n in ["alpha", "beta", "@s/gamma"] * 3)
    requests = result["upstream_requests"]
    for path in ("/alpha", "/beta", "/@s%2Fgamma", "/alpha/-/alpha-1.0.0.tgz"):
        assert requests[path] == 1, requests
