"""Several workers on one data dir, and crash consistency of a publish."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.errors import NotFound
from r13core.names import PackageName
from r13core.registry import Registry
from r13core.storage.base import WriteTxn
from tests.npm_builders import files_under, open_registry, publish_body

A = PackageName.parse("widget")
fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def doc(reg: Registry, *, abbreviated: bool = False) -> dict[str, Any]:
    return json.loads(reg.packument(A, abbreviated=abbreviated).body)  # type: ignore[no-any-return]


def test_a_change_made_by_one_worker_is_served_by_another(tmp_path: Path) -> None:
    one, two = open_registry(tmp_path), open_registry(tmp_path)
    one.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    assert list(doc(two)["versions"]) == ["1.0.0"]  # two has now cached this state
    assert list(doc(two, abbreviated=True)["versions"]) == ["1.0.0"]
    one.put_package(A, publish_body("widget", "1.1.0"), actor=Actor("alice"))
    assert list(doc(two)["versions"]) == ["1.0.0", "1.1.0"]
    assert list(doc(two, abbreviated=True)["versions"]) == ["1.0.0", "1.1.0"]
    full = doc(one)
    full["versions"]["1.0.0"]["deprecated"] = "old"
    one.put_package(A, full, actor=Actor("alice"))
    assert doc(two, abbreviated=True)["versions"]["1.0.0"]["deprecated"] == "old"
    one.unpublish_package(A, doc(one)["_rev"], actor=Actor("alice"))
    with pytest.raises(NotFound):
        two.packument(A, abbreviated=True)
    with pytest.raises(NotFound):
        two.version(A, "latest")


def test_a_package_recreated_elsewhere_is_not_served_from_an_old_cache(tmp_path: Path) -> None:
    one, two = open_registry(tmp_path), open_registry(tmp_path)
    one.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    old = two.packument(A, abbreviated=False)
    one.unpublish_package(A, doc(one)["_rev"], actor=Actor("alice"))
    one.put_package(A, publish_body("widget", "2.0.0"), actor=Actor("alice"))
    new = two.packument(A, abbreviated=False)
    assert new.etag != old.etag
    assert list(json.loads(new.body)["versions"]) == ["2.0.0"]


def test_packuments_are_rendered_once_per_change_and_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = open_registry(tmp_path), open_registry(tmp_path)
    one.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    rendered = one.packument(A, abbreviated=False)

    def must_not_render(*args: Any) -> Any:
        raise AssertionError("rendered again although nothing changed")

    monkeypatch.setattr(two.renderer, "render_full", must_not_render)
    monkeypatch.setattr(two.renderer, "render_abbreviated", must_not_render)
    assert two.packument(A, abbreviated=False) == rendered
    assert two.packument(A, abbreviated=True) == one.packument(A, abbreviated=True)


def test_a_cached_packument_is_served_without_a_query_until_some_package_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = open_registry(tmp_path), open_registry(tmp_path)
    one.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    first = two.packument(A, abbreviated=False)
    queries: list[str] = []
    real = two.storage.package_rev

    def counted(name: str) -> int | None:
        queries.append(name)
        return real(name)

    monkeypatch.setattr(two.storage, "package_rev", counted)
    for _ in range(3):
        assert two.packument(A, abbreviated=False) is first
    assert queries == []  # the package-change signal has not moved: nothing to look up
    # Any package's change, in another worker, makes the next read check its rev again.
    one.put_package(PackageName.parse("other"), publish_body("other", "1.0.0"), actor=Actor("a"))
    assert two.packument(A, abbreviated=False) == first
    assert queries == ["widget"]
    one.put_package(A, publish_body("widget", "1.1.0"), actor=Actor("alice"))
    assert list(doc(two)["versions"]) == ["1.0.0", "1.1.0"]
    one.unpublish_package(A, doc(one)["_rev"], actor=Actor("alice"))
    with pytest.raises(NotFound):
        two.packument(A, abbreviated=False)


def test_a_worker_with_another_public_url_renders_its_own_urls(tmp_path: Path) -> None:
    one = open_registry(tmp_path)
    one.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    one.packument(A, abbreviated=True)
    other = Registry.open(tmp_path, public_url="https://npm.example.test", config=one.config)
    url = doc(other, abbreviated=True)["versions"]["1.0.0"]["dist"]["tarball"]
    assert url == "https://npm.example.test/widget/-/widget-1.0.0.tgz"


# -- crash consistency --------------------------------------------------------------------------


@contextmanager
def _failing_commit(reg: Registry) -> Iterator[None]:
    """Make the metadata commit fail after the blob is written (a crash before commit)."""
    real = reg.storage.write

    @contextmanager
    def write() -> Iterator[WriteTxn]:
        with real() as tx:
            yield tx
            raise OSError("power cut before COMMIT")

    reg.storage.write = write  # type: ignore[method-assign]
    try:
        yield
    finally:
        reg.storage.write = real  # type: ignore[method-assign]


def test_publish_that_dies_before_commit_leaves_only_an_orphan_file(tmp_path: Path) -> None:
    reg = open_registry(tmp_path)
    body = publish_body("widget", "1.0.0")
    with _failing_commit(reg), pytest.raises(OSError, match="power cut"):
        reg.put_package(A, body, actor=Actor("alice"))
    with pytest.raises(NotFound):
        reg.packument(A, abbreviated=True)
    assert reg.storage.used_version("widget", "1.0.0") is None
    assert len(files_under(tmp_path / "blobs")) == 1  # the orphan
    assert reg.sweep() == 0  # too fresh: it might belong to a publish in flight
    assert reg.sweep(min_age=0) == 1
    assert files_under(tmp_path / "blobs") == []
    created, _ = reg.put_package(A, body, actor=Actor("alice"))  # npm's retry
    assert created
    assert reg.tarball(A, "widget-1.0.0.tgz").path.exists()


def test_retry_after_a_failed_commit_reuses_the_file_already_written(tmp_path: Path) -> None:
    reg = open_registry(tmp_path)
    body = publish_body("widget", "1.0.0")
    with _failing_commit(reg), pytest.raises(OSError):
        reg.put_package(A, body, actor=Actor("alice"))
    reg.put_package(A, body, actor=Actor("alice"))
    assert len(files_under(tmp_path / "blobs")) == 1
    assert reg.sweep(min_age=0) == 0


def _die_before_commit(data_dir: Path, body: dict[str, Any]) -> None:
    reg = open_registry(data_dir)
    real = reg.storage.write

    @contextmanager
    def write() -> Iterator[WriteTxn]:
        with real() as tx:
            yield tx
            os._exit(17)  # the worker is killed between the writes and COMMIT

    reg.storage.write = write  # type: ignore[method-assign]
    reg.put_package(A, body, actor=Actor("alice"))


@fork
def test_a_worker_killed_mid_publish_leaves_the_registry_consistent(tmp_path: Path) -> None:
    body = publish_body("widget", "1.0.0")
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_die_before_commit, args=(tmp_path, body))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 17
    reg = open_registry(tmp_path)
    with pytest.raises(NotFound):
        reg.packument(A, abbreviated=False)
    assert reg.stats() == {"packages": 0, "versions": 0}
    assert reg.sweep(min_age=0) == 1
    reg.put_package(A, body, actor=Actor("alice"))
    assert doc(reg)["dist-tags"] == {"latest": "1.0.0"}


def _publish_many(data_dir: Path, versions: list[str]) -> None:
    reg = open_registry(data_dir)
    for version in versions:
        reg.put_package(A, publish_body("widget", version), actor=Actor(f"pid{os.getpid()}"))


@fork
def test_concurrent_publishes_from_two_workers_all_land(tmp_path: Path) -> None:
    open_registry(tmp_path).stats()  # create the schema first
    ctx = multiprocessing.get_context("fork")
    jobs = [
        ctx.Process(target=_publish_many, args=(tmp_path, [f"1.{i}.0" for i in range(6)])),
        ctx.Process(target=_publish_many, args=(tmp_path, [f"2.{i}.0" for i in range(6)])),
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=120)
        assert job.exitcode == 0
    reg = open_registry(tmp_path)
    assert len(doc(reg)["versions"]) == 12
    assert reg.stats() == {"packages": 1, "versions": 12}
