"""Another local user cannot take over r13's live state or read its files.

The review pre-created r13's shared-memory segments with mode 0666 as another
user; r13 adopted them and that user switched PRIVATE_REGISTRY off in the
running server. And with no umask, the database (scrypt hashes, tokens) and
blobs were 0644. The real-server check of file modes is in
tests/e2e/test_e2e_hardening.py; the C-level checks in tests/c/test_shm.c.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from r13core._ffi import segment_name
from r13core.config import ConfigStore, Feature
from r13core.datadir import secure_data_dir
from r13core.errors import OwnershipError
from r13core.metrics import Metrics
from r13core.ratelimit import RateLimiter
from r13core.storage.blobs import FileBlobStore
from r13core.storage.sqlite import SQLiteStorage

NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")

OPENERS: list[tuple[str, Callable[[Path], object]]] = [
    ("record", ConfigStore),
    ("rl-security", lambda d: RateLimiter(d, "security", 64)),
    ("metrics", Metrics),
]


def _mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _squat(name: str, mode: int) -> Path:
    """Make /dev/shm/<name> as a squatter would (a big enough, zeroed segment)."""
    path = Path("/dev/shm") / name.lstrip("/")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.ftruncate(fd, 1 << 20)
    finally:
        os.close(fd)
    return path


@pytest.mark.parametrize("part,opener", OPENERS, ids=[p for p, _ in OPENERS])
def test_precreated_shm_segment_is_refused(
    tmp_path: Path, part: str, opener: Callable[[Path], object]
) -> None:
    seg = _squat(segment_name(tmp_path, part), 0o666)
    try:
        with pytest.raises(OwnershipError) as err:
            opener(tmp_path)
        text = str(err.value)
        assert str(seg) in text and "0666" in text and "remove it" in text
    finally:
        seg.unlink()
    handle = opener(tmp_path)  # with the squatter gone, it opens
    handle.close()  # type: ignore[attr-defined]
    assert not seg.exists()  # and the last user removes its own segment


def _create_as_nobody(path: Path) -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.umask(0)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.ftruncate(fd, 1 << 20)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@as_root
def test_segment_of_another_user_is_refused_even_if_private(tmp_path: Path) -> None:
    seg = Path("/dev/shm") / segment_name(tmp_path, "record").lstrip("/")
    _create_as_nobody(seg)
    try:
        assert os.stat(seg).st_uid == NOBODY
        with pytest.raises(OwnershipError, match=r"belongs to .*uid 65534"):
            ConfigStore(tmp_path)
    finally:
        seg.unlink()


def test_a_live_record_cannot_be_switched_by_a_squatter(tmp_path: Path) -> None:
    # The review's attack end to end: a squatter's writable segment is never used,
    # so the squatter's write reaches nobody.
    seg = _squat(segment_name(tmp_path, "record"), 0o666)
    try:
        with pytest.raises(OwnershipError):
            ConfigStore(tmp_path)
    finally:
        seg.unlink()
    with ConfigStore(tmp_path) as store:
        assert store.enabled(Feature.PRIVATE_REGISTRY)
        assert _mode(Path("/dev/shm") / segment_name(tmp_path, "record").lstrip("/")) == 0o600


def test_shared_files_in_the_data_dir_must_be_private(tmp_path: Path) -> None:
    # The key-cache generation counter: whoever writes it can hide revocations.
    gen = tmp_path / "registry.sqlite3-authgen"
    gen.write_bytes(b"\0" * 8)
    gen.chmod(0o666)
    with pytest.raises(OwnershipError, match="authgen"):
        SQLiteStorage(tmp_path / "registry.sqlite3").auth_version()
    gen.chmod(0o644)  # readable only: narrowed, then used
    SQLiteStorage(tmp_path / "registry.sqlite3").auth_version()
    assert _mode(gen) == 0o600
    # A lock file that is a symlink is not r13's.
    (tmp_path / ".r13-metrics.init").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OwnershipError, match="symlink"):
        Metrics(tmp_path)


def test_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)  # an embedder's usual umask: modes come from r13 itself
    try:
        storage = SQLiteStorage(tmp_path / "registry.sqlite3")
        with storage.write() as tx:
            tx.save_package("a", {"v": 1})
        FileBlobStore(tmp_path / "blobs").put(b"tarball bytes")
        with ConfigStore(tmp_path):
            pass
        storage.close()
    finally:
        os.umask(old)
    for path in tmp_path.rglob("*"):
        want = 0o700 if path.is_dir() else 0o600
        assert _mode(path) == want, (path, oct(_mode(path)))


def test_data_dir_of_another_owner_or_writable_by_others_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(OwnershipError, match=r"mode 0777.*chmod 700"):
        secure_data_dir(shared)
    assert _mode(shared) == 0o777  # refused, not changed behind the admin's back
    shared.chmod(0o770)
    with pytest.raises(OwnershipError, match="group or other users may write"):
        secure_data_dir(shared)


@as_root
def test_data_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    with pytest.raises(OwnershipError, match=r"belongs to .*run r13 as the user that owns it"):
        secure_data_dir(theirs)


def test_an_older_install_is_narrowed_on_first_use(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old = os.umask(0o022)
    try:
        data.mkdir(mode=0o755)
        storage = SQLiteStorage(data / "registry.sqlite3")
        with storage.write() as tx:
            tx.save_package("a", {"v": 1})
        storage.close()
        # What an older r13 left: everything readable by others.
        (data / "blobs" / "sha512" / "ab").mkdir(parents=True, mode=0o755)
        (data / "blobs" / "sha512" / "ab" / "blob").write_bytes(b"x")
        for path in [data, *data.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    finally:
        os.umask(old)
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "--data", str(data), "keys", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "narrowed data dir" in out.stderr
    for path in [data, *data.rglob("*")]:
        if path.is_symlink() or path.is_socket():
            continue
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
