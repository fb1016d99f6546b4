"""Nothing left behind: the start-up sweep, the periodic sweep in one worker, unpublish.

Real files, a real SQLite database, and real processes where the behaviour is
about processes (the instance lock, the sweeper's election, a publish and a
sweep in two processes).
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.cli.serve_cmd import prepare
from r13core.audit import Actor
from r13core.errors import VersionExists
from r13core.locks import InstanceLock
from r13core.names import PackageName
from r13core.registry import PackageChange, Registry
from r13core.settings import Settings
from r13core.storage.base import TarballRecord, WriteTxn
from r13core.sweeper import Sweeper, startup_sweep
from tests.npm_builders import files_under, open_registry, publish_body
from tests.storage_contracts import age_file

A = PackageName.parse("widget")
fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def wait_for(cond: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def for_write(reg: Registry) -> dict[str, Any]:
    return json.loads(reg.packument_for_write(A).body)  # type: ignore[no-any-return]


def plant_orphans(data: Path) -> list[Path]:
    """What crashes and strangers leave: an unreferenced blob, a temp file, foreign files."""
    reg = open_registry(data)
    blob = reg.blobs.put(b"the tarball of a publish that died before its commit")
    path = reg.blobs.path(blob.sha512)
    assert path is not None
    temp = data / "blobs" / "tmp" / "0123456789abcdef.999.1.tmp"
    temp.write_bytes(b"half a tarball")
    misplaced = data / "blobs" / "sha512" / "00" / "00" / blob.sha512
    misplaced.parent.mkdir(parents=True, exist_ok=True)
    misplaced.write_bytes(b"a blob in the wrong place")
    foreign = data / "blobs" / "notes.txt"
    foreign.write_text("not ours")
    return [path, temp, misplaced, foreign]


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    registry = open_registry(tmp_path)
    for version in ("1.0.0", "2.0.0"):
        registry.put_package(A, publish_body("widget", version), actor=Actor("alice"))
    return registry


def referenced(reg: Registry) -> list[Path]:
    out = []
    for sha in reg.storage.blob_refs():
        path = reg.blobs.path(sha)
        assert path is not None, "a row without its blob"
        out.append(path)
    return sorted(out)


# -- start-up -----------------------------------------------------------------------


def test_startup_sweep_alone_removes_every_orphan_whatever_its_age(
    reg: Registry, tmp_path: Path
) -> None:
    keep = referenced(reg)
    plant_orphans(tmp_path)  # all of them fresh: a min-age guard would keep them
    with InstanceLock(tmp_path) as instance:
        assert startup_sweep(reg, instance) == 4
        assert instance.held
    assert files_under(tmp_path / "blobs") == keep
    assert not (tmp_path / "blobs" / "sha512" / "00").exists()  # empty directories too
    assert [p.read_bytes()[:2] for p in keep] == [b"\x1f\x8b"] * 2


def _hold_shared(data: str, ready: Any, release: Any) -> None:
    lock = InstanceLock(data)
    lock.shared()
    ready.set()
    release.wait(60)


@fork
def test_startup_sweep_is_skipped_while_another_server_process_runs(
    reg: Registry, tmp_path: Path
) -> None:
    planted = plant_orphans(tmp_path)
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold_shared, args=(str(tmp_path), ready, release))
    other.start()
    try:
        assert ready.wait(30)
        with InstanceLock(tmp_path) as instance:
            assert startup_sweep(reg, instance) is None
            assert not instance.held
        assert all(p.exists() for p in planted)  # a publish of the other process may own them
    finally:
        release.set()
        other.join(30)
    with InstanceLock(tmp_path) as instance:
        assert startup_sweep(reg, instance) == 4
    assert files_under(tmp_path / "blobs") == referenced(reg)


def test_serve_start_up_removes_orphans_and_keeps_the_lock_shared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    settings = Settings.from_env({"R13_DATA": str(data)})
    prepare(settings).release()  # first start: database, key
    planted = plant_orphans(data)
    # Other writers' temp files, left by a kill between their write and their rename.
    (data / "run").mkdir(exist_ok=True)
    planted += [data / "admin.tmp", data / ".config.r13.77.py.tmp",
                data / "run" / ".metrics.json.77.1.tmp"]  # fmt: skip
    for path in planted[-3:]:
        path.write_text("half written")
    keep = [data / "admin.key", data / "config.r13", data / "registry.sqlite3"]
    instance = prepare(settings)
    try:
        assert "removed 7 orphan file(s)" in capsys.readouterr().err
        assert all(p.exists() for p in keep)
        assert not any(p.exists() for p in planted)
        assert not InstanceLock(data).try_exclusive()  # held shared by the "server"
        # A second `r13 serve` on the same data dir does not sweep under us.
        planted = [*plant_orphans(data), data / "admin.tmp"]
        planted[-1].write_text("a server's temp file")
        second = prepare(settings)
        assert "another r13 process is using" in capsys.readouterr().err
        assert all(p.exists() for p in planted)
        second.release()
    finally:
        instance.release()


# -- the periodic sweep ------------------------------------------------------------------


def test_periodic_sweep_keeps_young_files_and_removes_old_ones(
    reg: Registry, tmp_path: Path
) -> None:
    keep = referenced(reg)
    planted = plant_orphans(tmp_path)
    assert reg.sweep(min_age=3600) == 0  # could be a publish in flight
    for path in planted:
        age_file(path, 7200)
    for path in keep:
        age_file(path, 7200)  # old but referenced: stays
    assert reg.sweep(min_age=3600) == 4
    assert files_under(tmp_path / "blobs") == keep


def _publish_holds_store(data: Path, phase: Any, go: Any) -> None:
    """A publish whose commit waits for the parent: is the store held from put to commit?"""
    reg = open_registry(data)
    real = reg.storage.write

    @contextmanager
    def write() -> Iterator[WriteTxn]:
        with real() as tx:
            yield tx
            phase.set()  # the file is written (or reused), the row not committed
            go.wait(60)

    reg.storage.write = write  # type: ignore[method-assign]
    reg.put_package(A, publish_body("widget", "3.0.0"), actor=Actor("alice"))


def _try_exclusive(lock_path: Path) -> bool:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@fork
def test_a_sweep_cannot_remove_a_file_between_a_publishs_put_and_its_commit(
    reg: Registry, tmp_path: Path
) -> None:
    ctx = multiprocessing.get_context("fork")
    phase, go = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_publish_holds_store, args=(tmp_path, phase, go))
    child.start()
    try:
        assert phase.wait(60)
        # The new blob exists without a row; a sweep must wait for the commit.
        assert len(files_under(tmp_path / "blobs")) == 3
        assert not _try_exclusive(tmp_path / "blobs.lock")
        sweeper = threading.Thread(target=reg.sweep, kwargs={"min_age": 0})
        sweeper.start()
        go.set()
        sweeper.join(60)
        assert not sweeper.is_alive()
    finally:
        go.set()
        child.join(60)
    assert child.exitcode == 0
    assert len(referenced(reg)) == 3  # every row has its blob
    assert files_under(tmp_path / "blobs") == referenced(reg)
    assert _try_exclusive(tmp_path / "blobs.lock")  # released with the publish


def _run_sweeper(data: str, status: Any) -> None:
    reg = open_registry(Path(data))
    sweeper = Sweeper(reg, data, interval=0.05, min_age=0, poll=0.05)
    sweeper.start()
    while True:
        status[os.getpid()] = (sweeper.leading, sweeper.sweeps)
        time.sleep(0.02)


@fork
def test_one_worker_sweeps_and_another_takes_over_when_it_dies(
    reg: Registry, tmp_path: Path
) -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        status = manager.dict()
        workers = [ctx.Process(target=_run_sweeper, args=(str(tmp_path), status)) for _ in range(2)]
        for w in workers:
            w.start()
        try:
            wait_for(lambda: len(status) == 2 and any(s[1] >= 3 for s in status.values()))
            sweeping = [pid for pid, (_, sweeps) in status.items() if sweeps > 0]
            assert len(sweeping) == 1  # one leader; the other only waits for the lock
            leader = sweeping[0]
            orphan = tmp_path / "blobs" / "tmp" / "first.tmp"
            orphan.write_bytes(b"left by a crash")
            wait_for(lambda: not orphan.exists())
            os.kill(leader, signal.SIGKILL)
            (follower,) = (w.pid for w in workers if w.pid != leader)
            wait_for(lambda: status[follower][1] > 0)
            orphan = tmp_path / "blobs" / "tmp" / "second.tmp"
            orphan.write_bytes(b"left by a crash")
            wait_for(lambda: not orphan.exists())
        finally:
            for w in workers:
                if w.is_alive():
                    w.kill()
                w.join(30)
    assert files_under(tmp_path / "blobs") == referenced(reg)


def test_sweeper_refuses_nonsense_intervals(tmp_path: Path, reg: Registry) -> None:
    with pytest.raises(ValueError):
        Sweeper(reg, tmp_path, interval=0)
    with pytest.raises(ValueError):
        Sweeper(reg, tmp_path, min_age=-1)


# -- unpublish ------------------------------------------------------------------------------


def test_unpublishing_a_version_deletes_its_file_and_keeps_its_number(
    reg: Registry, tmp_path: Path
) -> None:
    changes: list[PackageChange] = []
    reg.subscribe(changes.append)
    gone = reg.tarball(A, "widget-2.0.0.tgz").path
    doc = for_write(reg)
    del doc["versions"]["2.0.0"]
    reg.put_package_rev(A, doc["_rev"], doc, actor=Actor("alice"))
    assert not gone.exists()
    assert changes == [PackageChange("unpublish", "widget", ("2.0.0",))]
    with pytest.raises(VersionExists, match="cannot be reused"):
        reg.put_package(A, publish_body("widget", "2.0.0"), actor=Actor("alice"))
    assert files_under(tmp_path / "blobs") == referenced(reg)


def test_unpublishing_the_package_deletes_every_file(reg: Registry, tmp_path: Path) -> None:
    changes: list[PackageChange] = []
    reg.subscribe(changes.append)
    reg.unpublish_package(A, for_write(reg)["_rev"], actor=Actor("alice"))
    assert files_under(tmp_path / "blobs") == []
    assert changes == [PackageChange("unpublish", "widget", ("1.0.0", "2.0.0"))]


def test_a_blob_another_live_row_refers_to_stays(reg: Registry, tmp_path: Path) -> None:
    shared = reg.storage.tarball("widget", "1.0.0")
    assert shared is not None
    with reg.storage.write() as tx:  # another row pointing at the same bytes
        tx.add_tarball(TarballRecord("mirror", "1.0.0", shared.sha512, shared.size))
    reg.unpublish_package(A, for_write(reg)["_rev"], actor=Actor("alice"))
    assert [p.name for p in files_under(tmp_path / "blobs")] == [shared.sha512]


def test_an_unpublish_whose_file_deletion_failed_leaves_an_orphan_for_the_sweep(
    reg: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(sha512: str) -> bool:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(reg.blobs, "delete", refuse)
    reg.unpublish_package(A, for_write(reg)["_rev"], actor=Actor("alice"))  # committed anyway
    monkeypatch.undo()
    assert len(files_under(tmp_path / "blobs")) == 2
    assert reg.sweep(min_age=0) == 2
    assert files_under(tmp_path / "blobs") == []
