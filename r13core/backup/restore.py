"""``r13 restore SRC``: a backup back into an empty data dir (and an empty database).

Nothing is put in place before everything is checked. The backup's manifest
must be sealed and well formed; every file it lists must be there with its
size, and no other file; then each file is copied into a staging dir beside
the data dir and hashed on the way (tarballs by sha512, the rest by sha256),
the restored database is checked (SQLite's integrity check, the schema
version, every table's row count and digest, and the tarballs its rows refer
to: exactly those the manifest lists), and the record and the key ring are
read back. Only then is the staging dir renamed onto the empty data dir, one
atomic step: a corrupted backup, refused with what is wrong, leaves the target
as empty as it was. PostgreSQL's side is in r13core/backup/postgres.py.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from r13core.audit import Actor, AuditLog
from r13core.backup import datafiles
from r13core.backup import sqlite as sqlite_backup
from r13core.backup.create import backend_of, sqlite_path
from r13core.backup.datafiles import DirSync, copy_verified
from r13core.backup.digest import sync_filesystem
from r13core.backup.manifest import MANIFEST, Manifest, blob_path
from r13core.backup.progress import Progress, Silent
from r13core.config import Config13
from r13core.database import default_url, open_database
from r13core.datadir import fsync_dir
from r13core.errors import BackupCorrupt, BackupError, InvalidValue, NotEmpty

log = logging.getLogger("r13.backup")
_SHOWN = 5


@dataclass(frozen=True)
class RestoreResult:
    """A verified (and, unless only checked, restored) backup."""

    manifest: Manifest
    data_dir: Path
    checked_only: bool
    seconds: float


def describe_contents(directory: Path) -> str:
    """A few names of what ``directory`` holds, for a refusal."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    shown = ", ".join(names[:_SHOWN])
    more = f" (and {len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return shown + more


def check_empty_data_dir(data_dir: Path) -> None:
    """NotEmpty naming what the data dir holds, unless it is absent or empty."""
    if data_dir.is_symlink() or (data_dir.exists() and not data_dir.is_dir()):
        raise NotEmpty(f"{data_dir} is not a directory")
    if data_dir.is_dir() and any(data_dir.iterdir()):
        raise NotEmpty(
            f"the data dir {data_dir} is not empty: it holds {describe_contents(data_dir)}; "
            "restore needs an empty or new data dir"
        )


def check_listing(src: Path, manifest: Manifest) -> None:
    """Every listed file is there with its size, and nothing else is (cheap; before copying)."""
    expected: dict[str, int] = {rel: e.size for rel, e in manifest.files.items()}
    if manifest.blob_store == "files":
        expected.update({blob_path(h): size for h, size in manifest.tarballs.items()})
    for rel, size in sorted(expected.items()):
        path = src / rel
        if not path.is_file() or path.is_symlink():
            raise BackupCorrupt(f"{_what(rel)} is missing from the backup")
        if path.stat().st_size != size:
            raise BackupCorrupt(f"{_what(rel)} is {path.stat().st_size} bytes, the manifest "
                                f"says {size} (truncated or replaced)")  # fmt: skip
    for dirpath, _dirs, files in os.walk(src):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), src)
            if rel != MANIFEST and rel not in expected:
                raise BackupCorrupt(f"{rel} is in the backup but not in its manifest")


def _what(rel: str) -> str:
    if rel.startswith("blobs/"):
        return f"tarball {rel.rsplit('/', 1)[-1][:16]}..."
    return rel


def copy_files(src: Path, staging: Path, manifest: Manifest, progress: Progress,
               *, skip: set[str]) -> None:  # fmt: skip
    """Copy every listed file (tarballs too, for the files store) into ``staging``, verified."""
    dirs = DirSync()
    items: list[tuple[str, str, str, int]] = [
        (rel, "sha256", e.sha256, e.size) for rel, e in manifest.files.items() if rel not in skip
    ]
    if manifest.blob_store == "files":
        items += [(blob_path(h), "sha512", h, s) for h, s in manifest.tarballs.items()]
    progress.stage("verify", sum(size for *_, size in items))
    for rel, algorithm, digest, size in sorted(items):
        copy_verified(src / rel, staging / rel, algorithm, digest, size, link=False,
                      advance=progress.advance, what=_what(rel), dirs=dirs)  # fmt: skip
    dirs.sync(staging)


def check_data_files(staging: Path, manifest: Manifest) -> None:
    """The record is the manifest's and valid; the key ring names only files the backup has."""
    record = (staging / datafiles.RECORD).read_bytes()
    if record != manifest.record:
        raise BackupCorrupt(f"{datafiles.RECORD} differs from the record in the manifest")
    try:
        Config13.from_bytes(record)
    except InvalidValue as exc:
        raise BackupCorrupt(f"{datafiles.RECORD} is not a valid record ({exc})") from None
    ring = staging / datafiles.SIGNING / "ring.json"
    if ring.is_file():
        try:
            files = [str(e["file"]) for e in json.loads(ring.read_bytes())["keys"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupCorrupt(f"signing/ring.json is not a key ring ({exc})") from None
        for name in files:
            if f"{datafiles.SIGNING}/{name}" not in manifest.files:
                raise BackupCorrupt(f"signing/ring.json names {name}, which the backup lacks")


def restore_backup(src: Path, data_dir: Path, database_url: str | None = None, *,
                   blob_store: str | None = None, blob_dir: Path | None = None,
                   progress: Progress | None = None, check_only: bool = False,
                   actor: Actor | None = None) -> RestoreResult:  # fmt: skip
    """Verify the backup at ``src`` and restore it into the empty ``data_dir`` (and database).

    ``database_url`` is R13_DATABASE_URL (None: the data dir's SQLite file);
    ``blob_store`` and ``blob_dir`` are R13_BLOB_STORE and the files store's root
    (None: as the backup has it, under the data dir). With ``check_only`` everything
    is verified in a staging dir that is then removed. The restore is audited
    (``backup.restore``) in the restored database by ``actor``.
    """
    progress = progress or Silent()
    started = time.monotonic()
    src, data_dir = Path(src).absolute(), Path(data_dir).absolute()
    try:
        manifest = Manifest.read(src)
        url = database_url if database_url is not None else default_url(data_dir)
        backend = backend_of(url)
        if backend != manifest.backend:
            raise BackupError(
                f"this is a backup of a {manifest.backend} registry; restore it with "
                f"R13_DATABASE_URL naming an empty {manifest.backend} database"
            )
        if blob_store is not None and blob_store != manifest.blob_store:
            raise BackupError(
                f"this backup keeps tarballs in the {manifest.blob_store} store; restore it "
                f"with R13_BLOB_STORE={manifest.blob_store}"
            )
        place = Placement(data_dir, blob_dir)
        if not check_only:
            check_empty_data_dir(data_dir)
            if place.separate_blobs and manifest.blob_store == "files":
                check_empty_data_dir(place.blob_dir)
        check_listing(src, manifest)
        if backend == "sqlite":
            _restore_sqlite(src, place, url, manifest, progress, check_only=check_only)
        else:
            from r13core.backup import postgres as postgres_backup

            postgres_backup.restore_into(src, place, url, manifest, progress,
                                         check_only=check_only)  # fmt: skip
    finally:
        progress.close()
    if not check_only:
        _audit(data_dir, database_url, manifest, src, actor or Actor.cli())
    return RestoreResult(manifest, data_dir, check_only, time.monotonic() - started)


def staging_beside(data_dir: Path) -> Path:
    """A new private dir beside ``data_dir`` (same file system: the final rename is atomic)."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = data_dir.parent / f".{data_dir.name}.restore-{secrets.token_hex(4)}"
    os.mkdir(staging, 0o700)
    return staging


@dataclass(frozen=True)
class Placement:
    """Where a restore puts things: the data dir, and the files store's root if elsewhere."""

    data_dir: Path
    blobs: Path | None = None

    @property
    def blob_dir(self) -> Path:
        return (self.blobs or self.data_dir / "blobs").absolute()

    @property
    def separate_blobs(self) -> bool:
        return self.blob_dir != (self.data_dir / "blobs").absolute()


def _rename_into(staged: Path, target: Path) -> None:
    """Rename ``staged`` onto the absent or empty ``target``; NotEmpty if it filled meanwhile."""
    try:
        os.rename(staged, target)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise NotEmpty(
                f"{target} was written to during the restore; nothing restored"
            ) from None
        if exc.errno != errno.EXDEV:
            raise
        # Another file system (R13_BLOB_DIR elsewhere): copy, flush, then drop the staged copy.
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copytree(staged, target, dirs_exist_ok=True)
        sync_filesystem(target)
        shutil.rmtree(staged)
    fsync_dir(target.parent)


def commit_data_dir(staging: Path, place: Placement) -> None:
    """Put the verified staging dir in place: the tarballs first when they go elsewhere
    (R13_BLOB_DIR), then the data dir, renamed onto the (absent or empty) one in one step."""
    moved = False
    if place.separate_blobs and (staging / "blobs").is_dir():
        _rename_into(staging / "blobs", place.blob_dir)
        moved = True
    try:
        _rename_into(staging, place.data_dir)
    except BaseException:
        if moved:
            shutil.rmtree(place.blob_dir, ignore_errors=True)
        raise


def _restore_sqlite(src: Path, place: Placement, url: str, manifest: Manifest,
                    progress: Progress, *, check_only: bool) -> None:  # fmt: skip
    data_dir = place.data_dir
    db_path = sqlite_path(url)
    inside = db_path.parent == data_dir
    if not inside and not check_only:
        for suffix in ("", "-wal", "-journal"):
            if Path(f"{db_path}{suffix}").exists():
                raise NotEmpty(f"the database {db_path}{suffix} exists; restore needs a new one")
    staging = staging_beside(data_dir)
    try:
        copy_files(src, staging, manifest, progress, skip=set())
        staged_db = staging / manifest.database
        progress.stage("tables", 0)
        sqlite_backup.check_restored(staged_db, manifest.tables, manifest.tarballs,
                                     manifest.schema_version)  # fmt: skip
        if manifest.schema_version > sqlite_backup.schema_supported():
            raise BackupError(
                f"the backup's schema version {manifest.schema_version} is newer than this r13 "
                f"knows ({sqlite_backup.schema_supported()}): restore it with r13 "
                f"{manifest.r13_version} or later"
            )
        check_data_files(staging, manifest)
        if check_only:
            return
        if inside:
            if db_path.name != manifest.database:
                os.rename(staged_db, staging / db_path.name)
            commit_data_dir(staging, place)
            return
        os.link(staged_db, db_path)  # never replaces: fails if it appeared meanwhile
        fsync_dir(db_path.parent)
        os.unlink(staged_db)
        try:
            commit_data_dir(staging, place)
        except BaseException:
            db_path.unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _audit(data_dir: Path, url: str | None, manifest: Manifest, src: Path, actor: Actor) -> None:
    """``backup.restore`` in the restored database's audit log (after every check passed)."""
    storage = open_database(data_dir, url)
    try:
        AuditLog(storage).record_by(
            actor,
            "backup.restore",
            str(src),
            created=manifest.body()["created"],
            r13_version=manifest.r13_version,
            tarballs=len(manifest.tarballs),
        )
    finally:
        storage.close()
    log.info("restored %s into %s", src, data_dir)
