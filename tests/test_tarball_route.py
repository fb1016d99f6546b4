"""The tarball route's answer from memory (SmallTarballs) and from the file: same bytes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import falcon.testing

from app.main import create_app
from app.resources.packages import Packages, SmallTarballs
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.npm_pack import package_tarball, publish_document
from r13core.services import open_services
from r13core.settings import Settings


def test_small_tarballs_keep_within_their_budget(tmp_path: Path) -> None:
    files = {}
    for i in range(5):
        files[i] = tmp_path / f"b{i}"
        files[i].write_bytes(bytes([i]) * 400)
    small = SmallTarballs(budget=1000, largest=500)
    assert small.get("e0", files[0], 400) == bytes([0]) * 400
    files[0].unlink()
    assert small.get("e0", files[0], 400) == bytes([0]) * 400  # kept: no file read
    assert small.get("e1", files[1], 400) == bytes([1]) * 400
    assert small.get("e2", files[2], 400) == bytes([2]) * 400  # over budget: starts again
    assert small.get("e0", files[0], 400) is None  # forgotten, and its file is gone
    big = tmp_path / "big"
    big.write_bytes(b"x" * 600)
    assert small.get("eb", big, 600) is None  # larger than `largest`: never kept
    assert small.get("e3", files[3], 999) is None  # a size that does not match the file


def test_large_and_small_tarballs_are_the_bytes_published(tmp_path: Path) -> None:
    env = {"R13_DATA": str(tmp_path), "R13_FEATURE_PRIVATE_REGISTRY": "0"}
    services = open_services(Settings.from_env(env))
    try:
        _, secret = KeyStore(open_database(tmp_path)).create("w", Permission.WRITE, None)
        app = create_app(services)
        client = falcon.testing.TestClient(app)
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        published = {}
        for name, size in (("tiny-one", 10), ("large-one", 300_000)):
            manifest = {"name": name, "version": "1.0.0"}
            noise = os.urandom(size).hex()  # hex of random bytes: gzip halves it, no more
            tgz = package_tarball(manifest, {"index.js": "1;\n", "blob.txt": noise})
            doc = publish_document(manifest, tgz, registry="http://localhost:4873")
            put = client.simulate_put(f"/{name}", body=json.dumps(doc), headers=headers)
            assert put.status_code == 201, put.text
            published[name] = tgz
        assert len(published["large-one"]) > SmallTarballs().largest
        for _ in range(2):  # the second time the small one comes from memory
            for name, tgz in published.items():
                got = client.simulate_get(f"/{name}/-/{name}-1.0.0.tgz")
                assert got.status_code == 200 and got.content == tgz
                assert int(got.headers["content-length"]) == len(tgz)
        entries = app._sinks
        sink = next(x for entry in entries for x in entry if isinstance(x, Packages))
        assert list(sink.small._items.values()) == [published["tiny-one"]]
    finally:
        services.config.close()
