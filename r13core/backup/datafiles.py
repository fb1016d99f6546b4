"""The data dir's files a backup holds besides the database, and the tarballs.

What a restored registry needs to serve identically, and nothing else:

* ``config.r13``: the 13-byte record (flags, the registry's identity, the terminal);
* ``signing/``: the key ring and its private keys (``ring.json``, ``*.pem``): without
  them every stored signature would name a key the restored registry no longer
  serves, and ``/-/npm/v1/keys`` would change; ``upstream-keys.json``, the uplink's
  public keys last fetched, so proxied versions verify before the next fetch;
* ``admin.key``: the first admin key's secret, when the data dir still has the file
  (its hash is in the database, so the key works after a restore; the file is
  the operator's copy of it);
* every tarball the snapshot's rows refer to.

Left out on purpose, because they are state of one running server, not data:
the rate limiter's and the monitor's shared memory and its id file
(``.r13-shm.id``: a restored data dir must get segments of its own), the
events log of the live channel, the monitor's history, the uplink's breaker
and single-flight files, lock files, the database's ``-wal``/``-shm`` and
key-cache counter (``-authgen``), temp files, and earlier backups.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from r13core import locks
from r13core.backup.digest import copy_hashing, sync_filesystem
from r13core.backup.manifest import FileEntry
from r13core.datadir import FILE_MODE, make_private_dirs, open_private
from r13core.errors import BackupCorrupt, BackupError

RECORD: Final = "config.r13"
SIGNING: Final = "signing"
ADMIN_KEY: Final = "admin.key"
UPSTREAM_KEYS: Final = "upstream-keys.json"
_RING: Final = "ring.json"


def write_file(directory: Path, rel: str, data: bytes) -> FileEntry:
    """Write ``data`` to ``directory/rel`` (0600, fsynced); its manifest entry."""
    path = directory / rel
    make_private_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return FileEntry(len(data), hashlib.sha256(data).hexdigest())


def signing_files(data_dir: Path) -> dict[str, bytes]:
    """The key ring's files by their path in the backup, read under the ring's lock.

    The lock keeps a rotation from landing between reading the ring and its keys.
    """
    directory = data_dir / SIGNING
    if not (directory / _RING).is_file():
        return {}
    out: dict[str, bytes] = {}
    fd = open_private(directory / ".lock")
    try:
        locks.flock(fd, fcntl.LOCK_EX)
        ring = (directory / _RING).read_bytes()
        out[f"{SIGNING}/{_RING}"] = ring
        try:
            names = [str(e["file"]) for e in json.loads(ring)["keys"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"{directory / _RING} is not a key ring ({exc})") from None
        for name in names:
            if "/" in name or name.startswith("."):
                raise BackupError(f"{directory / _RING} names a strange key file {name!r}")
            out[f"{SIGNING}/{name}"] = (directory / name).read_bytes()
        with contextlib.suppress(FileNotFoundError):
            out[f"{SIGNING}/{UPSTREAM_KEYS}"] = (directory / UPSTREAM_KEYS).read_bytes()
    finally:
        os.close(fd)
    return out


def admin_key(data_dir: Path) -> dict[str, bytes]:
    """``admin.key`` when the data dir has it."""
    try:
        return {ADMIN_KEY: (data_dir / ADMIN_KEY).read_bytes()}
    except FileNotFoundError:
        return {}


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst``; copy it when a link cannot be made (another file system)."""
    make_private_dirs(dst.parent)
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(src, dst)
        os.chmod(dst, FILE_MODE)


def stage_blobs(store_path: Callable[[str], Path | None], hashes: Iterable[str],
                staging: Path) -> None:  # fmt: skip
    """Hard-link every blob of ``hashes`` from the store into ``staging/<sha512>`` (flat).

    Called while the blob store is held (no sweep or deletion can run): a link costs
    microseconds, and once made the bytes stay whatever the store does next (blobs
    are never changed in place, only created and unlinked).
    """
    for sha512 in hashes:
        src = store_path(sha512)
        if src is None:
            raise BackupError(
                f"tarball {sha512[:16]}... is referenced by a row but missing from the "
                "blob store: the data dir is damaged (nothing was backed up)"
            )
        link_or_copy(src, staging / sha512)


class DirSync:
    """The directories a copy creates (each made once), and the one flush at the end.

    Files are not fsynced one by one: :meth:`sync` flushes the whole file system once
    (r13core/backup/digest.py ``sync_filesystem``) before the caller renames the tree
    into place.
    """

    def __init__(self) -> None:
        self.dirs: set[Path] = set()

    def parent_of(self, path: Path) -> None:
        if path.parent not in self.dirs:
            make_private_dirs(path.parent)
            self.dirs.add(path.parent)

    def sync(self, root: Path) -> None:
        sync_filesystem(root)
        self.dirs.clear()


def copy_verified(src: Path, dst: Path, algorithm: str, expected: str, size: int | None,
                  *, link: bool, advance: Callable[[int], None], what: str,
                  dirs: DirSync) -> None:  # fmt: skip
    """Copy (or, with ``link``, hard-link) ``src`` to ``dst`` and check its hash and size.

    The bytes are read once either way: hashed while copied, or after linking. Not
    fsynced here: see :class:`DirSync`.
    BackupCorrupt names ``what`` when they are not the expected ones.
    """
    dirs.parent_of(dst)
    linked = False
    if link:
        try:
            os.link(src, dst)
            linked = True
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
    try:
        with open(src, "rb") as f:
            if linked:
                digest, got = copy_hashing(f, None, algorithm, advance)
            else:
                fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
                with os.fdopen(fd, "wb") as out:
                    digest, got = copy_hashing(f, out, algorithm, advance)
    except FileNotFoundError:
        raise BackupCorrupt(f"{what} is missing") from None
    if digest != expected:
        raise BackupCorrupt(f"{what} is damaged: its {algorithm} does not match")
    if size is not None and got != size:
        raise BackupCorrupt(f"{what} is {got} bytes, {size} expected")
