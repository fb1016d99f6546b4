"""What webhooks add to a publish: queueing the deliveries inside the publish's transaction.

Run: .venv/bin/python -m pytest bench/bench_hooks.py --benchmark-only -q \
        --benchmark-columns=min,median,rounds

One publish (``Registry.put_package``: the checks, the tarball written and fsynced, the
one SQLite transaction, the audit event) of a new version of a small package, over a
real data dir (WAL, synchronous=FULL), with:

- ``0 hooks``: no hook exists (the transaction's one extra read finds none);
- ``10 hooks elsewhere``: ten hooks on other packages (the state before the change is
  kept and compared; the hook lookup finds nothing to queue);
- ``10 hooks on it``: ten hooks on this package (one event row and ten delivery rows
  written in the transaction).

Nothing is delivered here: delivery is the worker's, off the request path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.names import PackageName
from r13core.services import Services, open_services
from r13core.settings import Settings
from tests.npm_builders import publish_body

ROUNDS = 200


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    s = open_services(
        Settings.from_env({"R13_DATA": str(tmp_path), "R13_HOOKS_ALLOW_PRIVATE": "1"})
    )
    yield s
    s.storage.close()


def _hooks(services: Services, n: int, target: str) -> None:
    for i in range(n):
        services.hooks.add(Actor("admin"), owner="admin", kind="package",
                           name=target if target != "other" else f"other-{i}",
                           endpoint="http://127.0.0.1:9/hook", secret="s")  # fmt: skip


def _publish(benchmark: Any, services: Services, rounds: Callable[[int], int], group: str) -> None:
    benchmark.group = group
    name = PackageName.parse("bench-pkg")
    actor = Actor("admin")
    n = rounds(ROUNDS)
    bodies = iter([publish_body("bench-pkg", f"1.0.{i}") for i in range(n + 2)])
    services.registry.put_package(name, next(bodies), actor=actor)  # the package exists

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (name, next(bodies)), {"actor": actor}

    benchmark.pedantic(services.registry.put_package, setup=setup, rounds=n, iterations=1)


@pytest.mark.parametrize("hooks", ["0 hooks", "10 hooks elsewhere", "10 hooks on it"])
def test_publish_with_hooks(
    benchmark: Any, services: Services, rounds: Callable[[int], int], hooks: str
) -> None:
    if hooks == "10 hooks elsewhere":
        _hooks(services, 10, "other")
    elif hooks == "10 hooks on it":
        _hooks(services, 10, "bench-pkg")
    _publish(benchmark, services, rounds, "publish a new version")
    queued = services.storage.queue_counts()["pending"]
    assert queued == (rounds(ROUNDS) + 1) * 10 if hooks == "10 hooks on it" else queued == 0


class _Rollback(Exception):
    pass


@pytest.mark.parametrize("hooks", ["0 hooks", "10 hooks on it"])
def test_the_queueing_step_alone(benchmark: Any, services: Services, hooks: str) -> None:
    """Only what the change's transaction does for webhooks (then rolled back): with no
    hook, one probe; with ten, the snapshot, the events, the lookup and 11 rows."""
    from r13core.hooks.events import snapshot
    from r13core.registry.changes import Draft, _queue_hooks

    benchmark.group = "the webhook step inside one publish's transaction"
    name = "bench-pkg"
    for i in range(20):  # a package with 20 versions
        services.registry.put_package(
            PackageName.parse(name), publish_body(name, f"1.0.{i}"), actor=Actor("admin")
        )
    if hooks != "0 hooks":
        _hooks(services, 10, name)
    record = services.storage.package(name)
    assert record is not None
    new_version = {**record.doc["versions"]["1.0.19"], "version": "2.0.0"}

    def step() -> None:
        try:
            with services.storage.write() as tx:
                if tx.any_hooks():
                    doc = {**record.doc, "versions": dict(record.doc["versions"])}
                    draft = Draft(tx, name, doc, "2026-11-28T00:00:00.000Z")
                    before = snapshot(doc)
                    doc["versions"]["2.0.0"] = new_version
                    _queue_hooks(tx, draft, before, "admin")
                raise _Rollback
        except _Rollback:
            pass

    benchmark(step)
