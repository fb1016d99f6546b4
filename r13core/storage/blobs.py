"""Tarball bytes: the :class:`BlobStore` contract and its files implementation.

A blob store keeps tarball bytes content-addressed by sha512
(tests/storage_contracts/blobs.py is the contract). :class:`FileBlobStore`
keeps them as files: ``<root>/objects/ab/<128 hex>``, one level of 256 directories
(as git keeps its objects), each made the first time a put needs it. Stores written
before 2026-11-28, and restored backups (whose layout it is), keep tarballs at
``<root>/sha512/ab/cd/<128 hex>``: those are read, reused, swept and deleted where they
are, never moved; a new tarball always goes to ``objects/``. Two levels (65,536
directories) made a directory, and fsynced its parent, for most publishes into any store
of fewer than ~45,000 tarballs (bench/RESULTS.md, "Issue 15, sixth session").

Every entry on a blob's path is durable before a put returns: a directory's entry is
fsynced in its parent when the store or a put makes it, and also the first time a process
uses one it found (another process may have made it and not synced it yet), the blob's
own entry after its rename.

A put writes a temp file in ``<root>/tmp``, fsyncs it, re-reads and verifies
its sha512, renames it into place and fsyncs the directory. Only then may the
caller commit a metadata row pointing at it: if the process dies before that
commit, what is left is an orphan file (or a temp file) that a sweep removes.

Sweeps and publishes exclude each other through ``<root>.lock`` (flock, beside
the root so that the store holds only blobs and temp files): a
publish holds it shared from before its put until after its commit
(:meth:`FileBlobStore.hold`), a sweep or a deletion holds it exclusively
(:meth:`FileBlobStore.sweeping`) while it re-reads the references and
unlinks. So no file can be unlinked between a publish's put (which may reuse
an existing orphan file) and the commit that makes it referenced, and a
process killed in either section releases the lock with its life.

Paths come only from a validated hex digest, never from a client.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import hashlib
import os
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from r13core import locks
from r13core.datadir import FILE_MODE, fsync_dir, make_private_dirs, open_private
from r13core.errors import InvalidValue, R13Error


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob: sha512 hex digest, size, and whether this put created it."""

    sha512: str
    size: int
    created: bool


class BlobStore(Protocol):
    """Content-addressed tarball bytes, named by their sha512 (lowercase hex)."""

    @abc.abstractmethod
    def put(self, data: bytes) -> BlobInfo:
        """Store ``data`` durably and verified; a second put of the same bytes is a no-op."""

    @abc.abstractmethod
    def path(self, sha512: str) -> Path | None:
        """A local file holding the blob (for sendfile), or None if absent."""

    @abc.abstractmethod
    def read(self, sha512: str) -> bytes | None:
        """The blob's bytes, or None if absent."""

    @abc.abstractmethod
    def delete(self, sha512: str) -> bool:
        """Remove a blob; False if it was absent."""

    @abc.abstractmethod
    def hashes(self) -> Iterator[str]:
        """Every stored blob's sha512."""

    @abc.abstractmethod
    def hold(self) -> AbstractContextManager[None]:
        """Shared hold: while any is held, no sweep or deletion removes a file.

        A publish holds it from before its :meth:`put` until after its commit, so
        a blob it reuses cannot vanish before the row that refers to it exists.
        """

    @abc.abstractmethod
    def sweeping(self) -> AbstractContextManager[None]:
        """Exclusive: waits until no :meth:`hold` is held; removals happen inside."""

    @abc.abstractmethod
    def orphans(self, known: set[str], *, min_age: float) -> list[Path]:
        """Stored files that are not a blob in ``known``, older than ``min_age`` s (a list only).

        Unreferenced blobs, temp files of puts that died, anything else found in the store.
        """

    @abc.abstractmethod
    def remove_orphans(self, paths: Iterable[Path], known: set[str], *, min_age: float) -> int:
        """Remove those of ``paths`` still unreferenced by ``known`` and older than ``min_age``.

        Called inside :meth:`sweeping` with ``known`` read after the lock was taken.
        Returns how many files went.
        """

    def prune(self) -> int:
        """Remove empty containers (directories), when no other process uses the store."""
        return 0

    def spool_dir(self) -> Path:
        """Where a caller may write a temp file that :meth:`put_file` then adopts."""
        raise NotImplementedError

    def put_file(self, path: Path, sha512: str) -> BlobInfo:
        """Adopt the file at ``path`` whose sha512 the caller computed as it wrote it.

        Backends that keep files move it into place; the file is gone afterwards.
        """
        try:
            info = self.put(path.read_bytes())
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if info.sha512 != sha512:
            raise R13Error(f"blob {sha512[:16]}... did not verify after writing")
        return info

    def sweep_orphans(self, known: set[str], *, min_age: float = 3600.0) -> int:
        """Remove every orphan older than ``min_age`` s (see :meth:`orphans`); how many went.

        The age guard keeps a sweep from deleting the file of a publish that has
        written it but not yet committed when the caller's ``known`` is stale.
        """
        candidates = self.orphans(known, min_age=min_age)
        if not candidates:
            return 0
        with self.sweeping():
            return self.remove_orphans(candidates, known, min_age=min_age)


_HEX_RE: Final = re.compile(r"[0-9a-f]{128}")
_CHUNK: Final = 1 << 20


def _check_hex(sha512: str) -> str:
    if not isinstance(sha512, str) or not _HEX_RE.fullmatch(sha512):
        raise InvalidValue(f"not a sha512 hex digest: {sha512!r}")
    return sha512


def objects_path(objects: Path, sha512: str) -> Path:
    """Where a blob lives under a store's ``objects/`` (``ab/<128 hex>``; both stores'
    layout, the PostgreSQL store's node-local copies included)."""
    h = _check_hex(sha512)
    return objects / h[:2] / h


def files_under(tops: Iterable[Path]) -> Iterator[Path]:
    """Every file under ``tops``, and every link to a directory there (os.walk does not
    follow one): what a sweep looks at."""
    for top in tops:
        for dirpath, dirs, files in os.walk(top):
            for name in files:
                yield Path(dirpath, name)
            for name in dirs:
                if os.path.islink(os.path.join(dirpath, name)):
                    yield Path(dirpath, name)


def prune_empty(tops: Iterable[tuple[Path, bool]]) -> int:
    """Remove the empty directories under each ``(top, keep)`` (``top`` itself too unless
    ``keep``); how many went. Only when no put can run."""
    pruned = 0
    for top, keep in tops:
        for dirpath, _dirs, _files in os.walk(top, topdown=False):
            if keep and dirpath == str(top):
                continue
            try:
                os.rmdir(dirpath)  # refused while not empty
            except OSError:
                continue
            pruned += 1
    return pruned


def _digest_fd(fd: int) -> str:
    """The sha512 of everything ``fd`` holds, read back from its start."""
    h = hashlib.sha512()
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()


class FileBlobStore(BlobStore):
    """Blobs as files under ``root`` (created if missing); the lock file is ``<root>.lock``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._objects_str = str(self._objects)
        # The layout before 2026-11-28 (and a restored backup's): read, never written.
        self._legacy = self.root / "sha512"
        self._legacy_str = str(self._legacy)
        self._tmp = self.root / "tmp"
        self._lock_path = Path(f"{self.root}.lock")
        make_private_dirs(self._objects, durable=True)
        make_private_dirs(self._tmp)
        # Directories on a blob's path whose own entry this process has made durable (see
        # _place): another process may have made one and not synced its parent yet.
        self._synced: set[Path] = set()

    def _path(self, sha512: str) -> Path:
        return objects_path(self._objects, sha512)

    def _legacy_path(self, sha512: str) -> Path:
        h = _check_hex(sha512)
        return self._legacy / h[:2] / h[2:4] / h

    def _reuse(self, sha512: str, size: int) -> bool:
        """Whether a file of these bytes is stored already (a retry after a failed commit,
        or bytes stored before): the store's own place first, the older layout's only
        when there is none, as :meth:`path` reads them. Its age is refreshed, so that a
        sweep's grace period covers this publish too. A file of another size is not these
        bytes: the put writes them again (over it, in ``objects/``)."""
        for place in (self._path(sha512), self._legacy_path(sha512)):
            try:
                os.utime(place)
                return os.stat(place).st_size == size
            except (FileNotFoundError, NotADirectoryError):  # not there, or a foreign file
                continue
        return False

    def _place(self, tmp: Path, final: Path) -> None:
        """Rename ``tmp`` to ``final`` and fsync its directory. The directory is made (its
        parent fsynced) only when the rename finds it missing. The first time this process
        places a file under ``objects/`` and in a fan-out directory, their entries are
        fsynced too (the root, ``objects/``): another process may have made them and not
        synced them yet. So every entry on the path is durable when a put returns."""
        fan_out = final.parent
        try:
            os.replace(tmp, final)
        except FileNotFoundError:
            make_private_dirs(fan_out, durable=True)  # fsyncs objects/ for its entry
            os.replace(tmp, final)
            self._synced.add(fan_out)
        for directory in (self._objects, fan_out):
            if directory not in self._synced:
                fsync_dir(directory.parent)
                self._synced.add(directory)
        fsync_dir(fan_out)

    def put(self, data: bytes) -> BlobInfo:
        """Store ``data`` (temp, fsync, verify, rename, fsync dir); idempotent."""
        sha512 = hashlib.sha512(data).hexdigest()
        if self._reuse(sha512, len(data)):
            return BlobInfo(sha512, len(data), created=False)
        tmp = self._tmp / f"{sha512[:16]}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
                # What the file holds, read back through the same descriptor.
                if _digest_fd(fd) != sha512:
                    raise R13Error(f"blob {sha512[:16]}... did not verify after writing")
            finally:
                os.close(fd)
            self._place(tmp, self._path(sha512))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return BlobInfo(sha512, len(data), created=True)

    def spool_dir(self) -> Path:
        """``<root>/tmp``: a temp file there is on the blobs' file system (rename is atomic);
        one left by a process that died is an orphan the sweep removes."""
        return self._tmp

    def put_file(self, path: Path, sha512: str) -> BlobInfo:
        """Adopt a spooled file (fsync, rename into place, fsync dir); idempotent."""
        final = self._path(sha512)
        try:
            size = os.stat(path).st_size
            if self._reuse(sha512, size):
                return BlobInfo(sha512, size, created=False)
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._place(path, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return BlobInfo(sha512, size, created=True)

    def path(self, sha512: str) -> Path | None:
        """The blob's file, or None if absent."""
        h = _check_hex(sha512)
        # Hot path (every tarball GET): plain strings and one stat, no Path joins.
        p = f"{self._objects_str}/{h[:2]}/{h}"
        if os.path.isfile(p):
            return Path(p)
        # Files never move between the layouts: no race between the two looks.
        p = f"{self._legacy_str}/{h[:2]}/{h[2:4]}/{h}"
        return Path(p) if os.path.isfile(p) else None

    def read(self, sha512: str) -> bytes | None:
        """The blob's bytes, or None if absent."""
        p = self.path(sha512)
        return p.read_bytes() if p else None

    def delete(self, sha512: str) -> bool:
        """Remove a blob (from either layout); False if absent."""
        removed = False
        for place in (self._path(sha512), self._legacy_path(sha512)):
            try:
                place.unlink()
            except (FileNotFoundError, NotADirectoryError):
                continue
            removed = True
        return removed

    def hashes(self) -> Iterator[str]:
        """Every stored blob's sha512, once (files with other names, or out of their
        place, are ignored)."""
        seen: set[str] = set()
        for path in (*self._objects.glob("*/*"), *self._legacy.glob("*/*/*")):
            h = path.name
            if h not in seen and self._in_place(path) and path.is_file():
                seen.add(h)
                yield h

    # -- sweeping -------------------------------------------------------------------

    @contextlib.contextmanager
    def _flock(self, mode: int) -> Iterator[None]:
        # A description of our own per holder: flock locks belong to the open file
        # description, so threads sharing one would release each other's lock.
        fd = open_private(self._lock_path)
        try:
            # A sweep holds it for a while: wait on the hub, not in the kernel (a
            # publish of this very worker may hold it shared, waiting for its turn).
            locks.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def hold(self) -> contextlib.AbstractContextManager[None]:
        """Shared: while held, no sweep or deletion removes a file (publishes hold it)."""
        return self._flock(fcntl.LOCK_SH)

    def sweeping(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive: waits for every :meth:`hold` to end; removals happen inside."""
        return self._flock(fcntl.LOCK_EX)

    def _files(self) -> Iterator[Path]:
        yield from files_under((self._objects, self._legacy, self._tmp))
        # Anything else beside objects/, sha512/ and tmp/ is not ours either (those three
        # may be links to another disk: walked above, never listed themselves).
        own = {p.name for p in (self._objects, self._legacy, self._tmp)}
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.root):
                if entry.is_dir(follow_symlinks=False):
                    continue
                if entry.name in own and entry.is_dir():
                    continue
                yield Path(entry.path)

    def _in_place(self, path: Path) -> bool:
        """Whether ``path`` is named by a sha512 and stands at that hash's place, in the
        store's layout or in the one before it."""
        h = path.name
        if _HEX_RE.fullmatch(h) is None:
            return False
        up1 = path.parent
        if up1.parent == self._objects:  # objects/ab/<hex>
            return up1.name == h[:2]
        up2 = up1.parent  # sha512/ab/cd/<hex>
        return up2.parent == self._legacy and up2.name == h[:2] and up1.name == h[2:4]

    def _referenced(self, path: Path, known: set[str]) -> bool:
        """Whether ``path`` is a blob at its own place whose hash is in ``known``."""
        return path.name in known and self._in_place(path)

    def orphans(self, known: set[str], *, min_age: float) -> list[Path]:
        """Files that are not a referenced blob in its place and are older than ``min_age`` s.

        Blobs whose hash is not in ``known``, temp files, and anything else found
        under the root (misplaced or foreign files). Only lists; see
        :meth:`remove_orphans`.
        """
        cutoff = time.time() - min_age
        out = []
        for path in self._files():
            if self._referenced(path, known):
                continue
            try:
                if os.lstat(path).st_mtime <= cutoff:
                    out.append(path)
            except FileNotFoundError:
                continue
        return out

    def remove_orphans(self, paths: Iterable[Path], known: set[str], *, min_age: float) -> int:
        """Unlink ``paths`` that are still unreferenced by ``known`` and older than ``min_age``.

        Call it inside :meth:`sweeping` with ``known`` read after taking the lock.
        """
        cutoff = time.time() - min_age
        removed = 0
        for path in paths:
            if self._referenced(path, known):
                continue
            try:
                if os.lstat(path).st_mtime <= cutoff:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def prune(self) -> int:
        """Remove empty directories under ``objects/`` and the older ``sha512/`` (itself
        too, once empty: nothing is written there), only when no publish can run."""
        return prune_empty(((self._objects, True), (self._legacy, False)))
