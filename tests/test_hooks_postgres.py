"""Webhooks over PostgreSQL: publishes through one node queue their deliveries in the
change's transaction; two nodes' delivery workers drain the one queue together, and a
receiver that never fails gets each delivery exactly once (no dedup needed), in order
per package. (The hooks contract itself runs in tests/test_storage_postgres.py.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from r13core.audit import Actor
from r13core.hooks import Deliverer
from r13core.names import PackageName
from r13core.services import Services, open_services
from r13core.settings import Settings
from tests.hook_receiver import Receiver
from tests.npm_builders import publish_body

SECRET = "pg-hook-secret"


def _node(pg_url: str, data: Path) -> Services:
    env = {
        "R13_DATA": str(data),
        "R13_DATABASE_URL": pg_url,
        "R13_PUBLIC_URL": "http://r13.test",
        "R13_HOOKS_ALLOW_PRIVATE": "1",
        "R13_HOOKS_CONCURRENCY": "2",
        "R13_HOOKS_RETRY_BASE": "10",
    }
    return open_services(Settings.from_env(env))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET)
    r.start()
    yield r
    r.stop()


def test_two_nodes_share_the_queue_without_sending_anything_twice(
    pg_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    one, two = _node(pg_url, tmp_path / "one"), _node(pg_url, tmp_path / "two")
    try:
        admin = Actor("admin")
        one.hooks.add(admin, owner="admin", kind="scope", name="@pg", endpoint=receiver.url,
                      secret=SECRET)  # fmt: skip
        packages = [f"@pg/p{i}" for i in range(6)]
        versions = ["1.0.0", "1.1.0", "2.0.0"]
        for version in versions:
            for pkg in packages:
                node = one if pkg.endswith(("0", "2", "4")) else two
                node.registry.put_package(
                    PackageName.parse(pkg), publish_body(pkg, version), actor=admin
                )
        total = len(packages) * len(versions)
        assert one.storage.queue_counts()["pending"] == total
        sent = [0, 0]
        errors: list[BaseException] = []

        def work(n: int, node: Services) -> None:
            deliverer = Deliverer(node.storage, node.settings.hooks, name=f"node-{n}")
            try:
                while node.storage.queue_counts()["pending"]:
                    sent[n] += deliverer.run_once()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n, node)) for n, node in
                   enumerate((one, two))]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        raw = receiver.snapshot()
        assert len(raw) == total == sum(sent)  # nothing sent twice, nothing lost
        assert len({r.delivery for r in raw}) == total
        assert all(r.signature_ok for r in raw)
        for pkg in packages:
            mine = [r.body["version"] for r in raw if r.body["name"] == pkg]
            assert mine == versions, pkg
        assert one.storage.queue_counts() == {"pending": 0, "delivered": total, "failed": 0}
    finally:
        one.storage.close()
        two.storage.close()
