"""``r13 backup DEST``: a consistent online snapshot of a running registry.

One moment for everything (SQLite; PostgreSQL in r13core/backup/postgres.py):
while the blob store is *held* (the shared lock every publish holds from its
put to its commit: no sweep, unpublish or cache prune can delete a file
meanwhile, and publishes go on), the database is copied as of one commit, the
tarballs its rows refer to are hard-linked into a staging dir beside the blob
store, and the record and the key ring are read. The hold is then released —
it lasted a database copy plus a link per tarball — and the staged tarballs
are copied into the backup, each hashed on the way and checked against its
name. Exactly the tarballs the snapshot refers to are in the backup, and every
one of them is.

The backup is built in a hidden ``.<name>.partial-<random>`` dir beside DEST
and renamed to DEST once the manifest, written last, is on disk: a crash never
leaves something that looks like a complete backup. One backup of a data dir
runs at a time (``<data>/.r13-backup.lock``); its staging dir is
``<data>/.r13-backup-staging``, and a backup removes what a killed one left.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from r13core import locks
from r13core.backup import datafiles
from r13core.backup import sqlite as sqlite_backup
from r13core.backup.datafiles import DirSync, copy_verified, stage_blobs, write_file
from r13core.backup.digest import hash_file, sync_filesystem
from r13core.backup.manifest import FileEntry, Manifest, blob_path
from r13core.backup.progress import Progress, Silent
from r13core.datadir import fsync_dir, make_private_dirs, open_private
from r13core.errors import BackupError, NotEmpty
from r13core.storage.blobs import BlobStore

log = logging.getLogger("r13.backup")

LOCK_FILE: Final = ".r13-backup.lock"
STAGING_DIR: Final = ".r13-backup-staging"


@dataclass(frozen=True)
class BackupSource:
    """What a backup reads: the data dir, the database's URL, the blob store, the record.

    The staging dir is in the data dir: with the files store inside it (the default)
    the tarballs are hard-linked there; with R13_BLOB_DIR on another file system they
    are copied while the store is held, which makes the hold last a copy.
    """

    data_dir: Path
    database_url: str
    blobs: BlobStore
    record: Callable[[], bytes]
    blob_store: str = "files"
    """``files`` or ``database`` (R13_BLOB_STORE): where the tarball bytes live."""


@dataclass(frozen=True)
class BackupResult:
    """A finished backup: where, what it holds, how long it took."""

    path: Path
    manifest: Manifest
    seconds: float

    @property
    def bytes(self) -> int:
        """Bytes in the backup (the database, tarballs and other files)."""
        files = sum(e.size for e in self.manifest.files.values())
        if self.manifest.blob_store == "database":
            return files  # the tarballs are inside the dump
        return files + self.manifest.tarball_bytes


def backend_of(url: str) -> str:
    """``sqlite`` or ``postgresql``, from a storage URL's scheme."""
    scheme = url.strip().partition(":")[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise BackupError(f"r13 cannot back up a {scheme!r} database")


def sqlite_path(url: str) -> Path:
    """The file a sqlite URL names (absolute)."""
    from r13core.storage.backends import SQLiteTarget, parse_url

    target = parse_url(url)
    assert isinstance(target, SQLiteTarget)
    return target.path.absolute()


def check_destination(dest: Path) -> None:
    """DEST must not exist, or be an empty directory."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise NotEmpty(f"{dest} exists and is not a directory; name a new one for the backup")
    if dest.is_dir() and any(dest.iterdir()):
        raise NotEmpty(f"{dest} is not empty; a backup goes into a new or empty directory")


@contextlib.contextmanager
def one_at_a_time(data_dir: Path) -> Iterator[None]:
    """The data dir's backup lock (waits for a running backup to end)."""
    fd = open_private(data_dir / LOCK_FILE)
    try:
        locks.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def create_backup(source: BackupSource, dest: Path, *, link: bool = False,
                  progress: Progress | None = None, clock: Callable[[], float] = time.time,
                  then: Callable[[], object] | None = None) -> BackupResult:  # fmt: skip
    """Back up ``source`` into the new directory ``dest``; see the module docstring.

    ``link`` hard-links tarballs into the backup instead of copying them when DEST is
    on the data dir's file system (no space used, but the same disk: for frequent
    local snapshots, not instead of a copy elsewhere). ``then`` runs once the backup is
    in place, still under the data dir's backup lock (the automatic backups' prune).
    """
    progress = progress or Silent()
    dest = Path(dest).absolute()
    check_destination(dest)
    make_private_dirs(dest.parent)
    started = time.monotonic()
    with one_at_a_time(source.data_dir):
        staging = source.data_dir / STAGING_DIR
        shutil.rmtree(staging, ignore_errors=True)  # a killed backup's; we hold the lock
        tmp = dest.parent / f".{dest.name}.partial-{secrets.token_hex(4)}"
        os.mkdir(tmp, 0o700)
        try:
            backend = backend_of(source.database_url)
            if backend == "sqlite":
                manifest = _sqlite(source, tmp, staging, link=link, progress=progress,
                                   clock=clock)  # fmt: skip
            else:
                from r13core.backup import postgres as postgres_backup

                manifest = postgres_backup.snapshot_into(source, tmp, staging, link=link,
                                                  progress=progress, clock=clock)  # fmt: skip
            manifest.write(tmp)
            sync_filesystem(tmp)  # every file of the backup on disk before it gets its name
            _commit(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        else:
            if then is not None:
                then()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            progress.close()
    return BackupResult(dest, manifest, time.monotonic() - started)


def _commit(tmp: Path, dest: Path) -> None:
    """Rename the finished backup to DEST (replacing it only if it is an empty dir)."""
    try:
        os.rename(tmp, dest)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise NotEmpty(f"{dest} appeared while the backup was made; not replaced") from None
        raise
    fsync_dir(dest.parent)


def files_into(tmp: Path, manifest: Manifest, source: BackupSource, record: bytes,
               signing: dict[str, bytes]) -> None:  # fmt: skip
    """The record, the key ring and the admin key's file, each with its manifest entry."""
    manifest.files[datafiles.RECORD] = write_file(tmp, datafiles.RECORD, record)
    for rel, data in {**signing, **datafiles.admin_key(source.data_dir)}.items():
        manifest.files[rel] = write_file(tmp, rel, data)


def copy_staged(staging: Path, tmp: Path, tarballs: dict[str, int], *, link: bool,
                progress: Progress) -> None:  # fmt: skip
    """Copy (or link) the staged tarballs into the backup, each checked against its name."""
    progress.stage("tarballs", sum(tarballs.values()))
    dirs = DirSync()
    for sha512, size in sorted(tarballs.items()):
        rel = blob_path(sha512)
        copy_verified(staging / sha512, tmp / rel, "sha512", sha512, size, link=link,
                      advance=progress.advance, dirs=dirs,
                      what=f"tarball {sha512[:16]}... in the blob store")  # fmt: skip


def _sqlite(source: BackupSource, tmp: Path, staging: Path, *, link: bool, progress: Progress,
            clock: Callable[[], float]) -> Manifest:  # fmt: skip
    live = sqlite_path(source.database_url)
    database = tmp / sqlite_backup.DATABASE_FILE
    store_path = source.blobs.path
    progress.stage("snapshot", 0)
    with source.blobs.hold():  # from here until the links exist, nothing is deleted
        moment = clock()
        sqlite_backup.snapshot(live, database)
        with closing(sqlite_backup.open_snapshot(database)) as conn:
            tarballs = sqlite_backup.blob_refs(conn)
        record = source.record()
        signing = datafiles.signing_files(source.data_dir)
        stage_blobs(store_path, sorted(tarballs), staging)
    log.info("snapshot of %s taken: %d tarball(s) staged", live, len(tarballs))
    with closing(sqlite_backup.open_snapshot(database)) as conn:
        schema = sqlite_backup.schema_version(conn)
        tables = sqlite_backup.digests(conn)
    manifest = Manifest(
        backend="sqlite",
        schema_version=schema,
        database=sqlite_backup.DATABASE_FILE,
        blob_store="files",
        record=record,
        created=moment,
        tables=tables,
        tarballs=tarballs,
    )
    copy_staged(staging, tmp, tarballs, link=link, progress=progress)
    digest, size = hash_file(database)
    manifest.files[sqlite_backup.DATABASE_FILE] = FileEntry(size, digest)
    files_into(tmp, manifest, source, record, signing)
    return manifest
