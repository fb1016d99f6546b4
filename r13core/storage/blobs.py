"""Tarballs as content-addressed files: ``<root>/sha512/ab/cd/<128 hex>``.

A put writes a temp file in ``<root>/tmp``, fsyncs it, re-reads and verifies
its sha512, renames it into place and fsyncs the directory. Only then may the
caller commit a metadata row pointing at it: if the process dies before that
commit, what is left is an orphan file (or a temp file) that
:meth:`FileBlobStore.sweep_orphans` removes.

Paths come only from a validated hex digest, never from a client.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from r13core.errors import InvalidValue, R13Error
from r13core.storage.base import BlobInfo, BlobStore

_HEX_RE: Final = re.compile(r"[0-9a-f]{128}")
_CHUNK: Final = 1 << 20


def _check_hex(sha512: str) -> str:
    if not isinstance(sha512, str) or not _HEX_RE.fullmatch(sha512):
        raise InvalidValue(f"not a sha512 hex digest: {sha512!r}")
    return sha512


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _digest_file(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class FileBlobStore(BlobStore):
    """Blobs as files under ``root`` (created if missing)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._objects = self.root / "sha512"
        self._objects_str = str(self._objects)
        self._tmp = self.root / "tmp"
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, sha512: str) -> Path:
        h = _check_hex(sha512)
        return self._objects / h[:2] / h[2:4] / h

    def put(self, data: bytes) -> BlobInfo:
        """Store ``data`` (temp, fsync, verify, rename, fsync dir); idempotent."""
        sha512 = hashlib.sha512(data).hexdigest()
        final = self._path(sha512)
        if final.exists():
            # Refresh its age so a concurrent sweep's grace period covers this publish.
            with contextlib.suppress(OSError):
                os.utime(final)
            if final.stat().st_size == len(data):
                return BlobInfo(sha512, len(data), created=False)
        tmp = self._tmp / f"{sha512[:16]}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            if _digest_file(tmp) != sha512:
                raise R13Error(f"blob {sha512[:16]}... did not verify after writing")
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return BlobInfo(sha512, len(data), created=True)

    def path(self, sha512: str) -> Path | None:
        """The blob's file, or None if absent."""
        h = _check_hex(sha512)
        # Hot path (every tarball GET): plain strings and one stat, no Path joins.
        p = f"{self._objects_str}/{h[:2]}/{h[2:4]}/{h}"
        return Path(p) if os.path.isfile(p) else None

    def read(self, sha512: str) -> bytes | None:
        """The blob's bytes, or None if absent."""
        p = self.path(sha512)
        return p.read_bytes() if p else None

    def delete(self, sha512: str) -> bool:
        """Remove a blob; False if absent."""
        try:
            self._path(sha512).unlink()
        except FileNotFoundError:
            return False
        return True

    def hashes(self) -> Iterator[str]:
        """Every stored blob's sha512 (files with other names are ignored)."""
        for path in self._objects.glob("*/*/*"):
            if _HEX_RE.fullmatch(path.name) and path.is_file():
                yield path.name

    def sweep_orphans(self, known: set[str], *, min_age: float = 3600.0) -> int:
        """Remove blobs not in ``known`` and temp files, when older than ``min_age`` s."""
        cutoff = time.time() - min_age
        removed = 0
        candidates = [
            p
            for p in self._objects.glob("*/*/*")
            if _HEX_RE.fullmatch(p.name) and p.name not in known
        ]
        candidates.extend(self._tmp.glob("*.tmp"))
        for path in candidates:
            try:
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
