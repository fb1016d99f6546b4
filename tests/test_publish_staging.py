"""A publish writes its tarball in a thread while it checks the rest (r13core/registry/publish.py).

The file blob store stages the tarball — temp file written, fsynced, verified — in a thread
of its own from the moment the bytes match their declared integrity; the transaction puts
it in place just before it commits. What must hold: the write really runs elsewhere, the
version is committed only with its tarball in place, and a publish that fails (its checks,
its transaction, the write itself) leaves no file at all.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from r13core.audit import Actor
from r13core.errors import InvalidPublish, NotFound, R13Error, VersionExists
from r13core.names import PackageName
from r13core.registry import Registry
from r13core.storage.blobs import FileBlobStore, StagedBlob
from tests.npm_builders import files_under, open_registry, package_tgz, publish_body

A = PackageName.parse("widget")


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return open_registry(tmp_path)


def blob_files(reg: Registry) -> list[Path]:
    """Every file under the blob store: stored blobs and temp files alike."""
    assert isinstance(reg.blobs, FileBlobStore)
    return files_under(reg.blobs.root)


def test_the_tarball_is_written_in_another_thread_and_in_place_at_commit(
    reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    real_stage = FileBlobStore.stage

    def stage(self: FileBlobStore, data: bytes) -> StagedBlob:
        threads.append(threading.get_ident())
        return real_stage(self, data)

    monkeypatch.setattr(FileBlobStore, "stage", stage)
    data = package_tgz("widget", "1.0.0")
    reg.put_package(A, publish_body("widget", "1.0.0", data), actor=Actor("alice"))
    assert threads and threads[0] != threading.get_ident()
    blob = reg.tarball(A, "widget-1.0.0.tgz")
    assert blob.path.read_bytes() == data
    assert [p.name for p in blob_files(reg) if p.parent.name == "tmp"] == []


def test_a_publish_refused_after_its_tarball_was_staged_leaves_no_file(reg: Registry) -> None:
    # The bytes match their declared integrity (so the write starts), then the tarball's
    # own package.json names another version: refused by the checks that follow.
    wrong = package_tgz("widget", "9.9.9")
    with pytest.raises(InvalidPublish):
        reg.put_package(A, publish_body("widget", "1.0.0", wrong), actor=Actor("alice"))
    assert blob_files(reg) == []
    with pytest.raises(NotFound):
        reg.packument(A, abbreviated=False)


def test_a_publish_refused_in_its_transaction_leaves_no_file(reg: Registry) -> None:
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    before = blob_files(reg)
    # Another tarball under a version number already used: refused inside the transaction.
    other = package_tgz("widget", "1.0.0", extra_files={"more.js": "1"})
    with pytest.raises(VersionExists):
        reg.put_package(A, publish_body("widget", "1.0.0", other), actor=Actor("alice"))
    assert blob_files(reg) == before


def test_a_failed_write_commits_nothing(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: FileBlobStore, data: bytes) -> Any:
        raise R13Error("the disk said no")

    monkeypatch.setattr(FileBlobStore, "stage", broken)
    with pytest.raises(R13Error, match="the disk said no"):
        reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))
    with pytest.raises(NotFound):
        reg.packument(A, abbreviated=False)
    assert reg.storage.used_version("widget", "1.0.0") is None
    monkeypatch.undo()
    reg.put_package(A, publish_body("widget", "1.0.0"), actor=Actor("alice"))  # and retried
    assert reg.tarball(A, "widget-1.0.0.tgz").path.exists()


def test_an_identical_retry_keeps_the_one_stored_file(reg: Registry) -> None:
    body = publish_body("widget", "1.0.0")
    reg.put_package(A, body, actor=Actor("alice"))
    first = blob_files(reg)
    reg.put_package(A, body, actor=Actor("alice"))
    assert blob_files(reg) == first
