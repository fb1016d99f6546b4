"""Tarball bytes in PostgreSQL, chunked: every node reads the same blobs.

Tables (migration 1, r13core/storage/postgres/migrations.py): ``blobs (sha512,
size, chunks, touched)`` and ``blob_chunks (sha512, seq, data)``, 256 KiB per
chunk (stored EXTERNAL: already-compressed bytes are not compressed again).

* :meth:`PgBlobStore.put` / :meth:`PgBlobStore.put_file` write every chunk and
  the ``blobs`` row in one transaction, then verify on the server
  (``sha512(string_agg(data ORDER BY seq))``) before that transaction commits:
  a blob row exists only for verified, complete bytes. A put of bytes already
  stored only refreshes ``touched`` (the sweep's grace period covers the
  publish that reuses it). The caller then commits the metadata row that
  refers to it — the publish point; a crash before that leaves an orphan row
  the sweep removes.
* :meth:`PgBlobStore.path` serves a node-local, content-addressed read-through
  copy under ``cache_dir`` (``objects/ab/<hex>``, the files store's layout): on a
  miss the chunks are
  streamed from the database into a temp file (one chunk in memory at a time),
  verified against the hash, and renamed into place; later GETs on this node
  go out by sendfile like the files store. A cached copy is only ever read for
  a hash some tarball row names, and a file named by a hash can only hold those
  bytes, so a copy on another node never serves stale content. Copies made before
  2026-11-28 (``sha512/ab/cd/<hex>``) are not read: the sweep removes them as it does
  any unreferenced copy, and the first read fetches the blob again.
* :meth:`PgBlobStore.hold` / :meth:`PgBlobStore.sweeping` are the cluster-wide
  version of the files store's flock: a session-level advisory lock
  (``LOCK_BLOBS``), shared per publish, exclusive per sweep or deletion, taken
  on a dedicated connection of this process (holds of one process share one
  shared lock, counted). So no node's sweep removes a blob between another
  node's put and its commit.
* :meth:`PgBlobStore.orphans` lists unreferenced rows older than ``min_age``
  (as ``Path("postgresql:blobs/<hex>")``: a name, not a file), unreferenced
  cached copies and dead temp files of this node; :meth:`remove_orphans`
  removes those still unreferenced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import psycopg

from r13core import pids
from r13core.datadir import FILE_MODE, make_private_dirs
from r13core.errors import R13Error
from r13core.storage.blobs import (
    _HEX_RE,
    BlobInfo,
    BlobStore,
    _check_hex,
    files_under,
    objects_path,
    prune_empty,
)
from r13core.storage.postgres.connection import LOCK_BLOBS, PgDatabase

CHUNK: Final = 256 * 1024
"""Bytes per ``blob_chunks`` row."""
ROW_PREFIX: Final = Path("postgresql:blobs")
"""Orphan rows are listed as ``ROW_PREFIX / <hex>`` (names, not files)."""


class _ProcessLock:
    """A session-level advisory lock of this process, on a connection of its own.

    Shared holds of the process are counted on one lock; the exclusive one is
    taken on a second connection (it waits for every other session's shared
    holds, and this process's own must be released first, as with flock).
    """

    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._pid = -1
        self._mutex: Any = None
        self._shared: psycopg.Connection[Any] | None = None
        self._count = 0

    def _mine(self) -> None:
        if self._pid != pids.current():  # made after fork (a gevent lock once patched)
            self._mutex = threading.Lock()
            self._shared = None
            self._count = 0
            self._pid = pids.current()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        self._mine()
        with self._mutex:
            if self._count == 0:
                if self._shared is None or self._shared.closed:
                    self._shared = self._db.connect()
                self._shared.execute("SELECT pg_advisory_lock_shared(%s, 0)", (LOCK_BLOBS,))
            self._count += 1
        try:
            yield
        finally:
            with self._mutex:
                self._count -= 1
                if self._count == 0 and self._shared is not None:
                    try:
                        self._shared.execute(
                            "SELECT pg_advisory_unlock_shared(%s, 0)", (LOCK_BLOBS,)
                        )
                    except psycopg.Error:  # a lost session released its locks with it
                        self._shared.close()
                        self._shared = None

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._db.connect() as conn:
            conn.execute("SELECT pg_advisory_lock(%s, 0)", (LOCK_BLOBS,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, 0)", (LOCK_BLOBS,))


class PgBlobStore(BlobStore):
    """Blobs in the database of ``db``; ``cache_dir`` holds this node's copies and temp files."""

    def __init__(self, db: PgDatabase, cache_dir: str | os.PathLike[str]) -> None:
        self.db = db
        self.cache_dir = Path(cache_dir).absolute()
        self._objects = self.cache_dir / "objects"
        self._objects_str = str(self._objects)
        self._former = self.cache_dir / "sha512"  # copies before 2026-11-28: swept, not read
        self._tmp = self.cache_dir / "tmp"
        make_private_dirs(self._objects)
        make_private_dirs(self._tmp)
        self._lock = _ProcessLock(db)

    def _cached(self, sha512: str) -> Path:
        return objects_path(self._objects, sha512)

    # -- writing ---------------------------------------------------------------------

    def _store(self, sha512: str, size: int, chunks: Iterable[bytes]) -> BlobInfo:
        """One transaction: reuse a stored blob, or write the chunks, verify, add the row."""
        with self.db.transaction() as txn:
            reused = txn.execute(
                "UPDATE blobs SET touched = %s WHERE sha512 = %s AND size = %s",
                (time.time(), sha512, size),
            ).rowcount
            if reused:
                return BlobInfo(sha512, size, created=False)
            # Two puts of the same new bytes: the second waits here for the first.
            txn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_BLOBS, sha512))
            txn.execute("DELETE FROM blob_chunks WHERE sha512 = %s", (sha512,))
            count = 0
            with txn.conn.cursor() as cur:
                for seq, data in enumerate(chunks):
                    cur.execute(
                        "INSERT INTO blob_chunks (sha512, seq, data) VALUES (%s, %s, %s)",
                        (sha512, seq, data),
                    )
                    count = seq + 1
            row = txn.execute(
                "SELECT encode(sha512(coalesce(string_agg(data, '' ORDER BY seq), '')), 'hex'), "
                "coalesce(sum(length(data)), 0) FROM blob_chunks WHERE sha512 = %s",
                (sha512,),
            ).fetchone()
            if row is None or row[0] != sha512 or int(row[1]) != size:
                raise R13Error(f"blob {sha512[:16]}... did not verify after writing")
            created = txn.execute(
                "INSERT INTO blobs (sha512, size, chunks, touched) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (sha512) DO UPDATE SET touched = excluded.touched",
                (sha512, size, count, time.time()),
            )
            assert created.rowcount == 1
        return BlobInfo(sha512, size, created=True)

    def put(self, data: bytes) -> BlobInfo:
        """Store ``data`` in chunks, verified on the server, in one transaction; idempotent."""
        sha512 = hashlib.sha512(data).hexdigest()
        view = memoryview(data)
        chunks = (bytes(view[i : i + CHUNK]) for i in range(0, len(data), CHUNK))
        return self._store(sha512, len(data), chunks)

    def spool_dir(self) -> Path:
        """``<cache>/tmp`` on this node (a dead put's file there is swept)."""
        return self._tmp

    def put_file(self, path: Path, sha512: str) -> BlobInfo:
        """Stream a spooled file into the database (one chunk in memory at a time)."""
        _check_hex(sha512)
        try:
            size = os.stat(path).st_size
            with open(path, "rb") as f:
                info = self._store(sha512, size, iter(lambda: f.read(CHUNK), b""))
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return info

    # -- reading ---------------------------------------------------------------------

    def path(self, sha512: str) -> Path | None:
        """This node's copy of the blob (fetched from the database on a miss), or None."""
        h = _check_hex(sha512)
        p = f"{self._objects_str}/{h[:2]}/{h}"
        if os.path.isfile(p):
            return Path(p)
        return self._fetch(h)

    def _fetch(self, sha512: str) -> Path | None:
        final = self._cached(sha512)
        tmp = self._tmp / f"{sha512[:16]}.{os.getpid()}.{time.monotonic_ns()}.fetch"
        digest = hashlib.sha512()
        try:
            with self.db.connection() as conn:
                row = conn.execute(
                    "SELECT size, chunks FROM blobs WHERE sha512 = %s", (sha512,)
                ).fetchone()
                if row is None:
                    return None
                size, chunks = int(row[0]), int(row[1])
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
                with os.fdopen(fd, "wb") as out:
                    for seq in range(chunks):
                        chunk = conn.execute(
                            "SELECT data FROM blob_chunks WHERE sha512 = %s AND seq = %s",
                            (sha512, seq),
                        ).fetchone()
                        if chunk is None:  # deleted meanwhile
                            return None
                        data = bytes(chunk[0])
                        digest.update(data)
                        out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
            if digest.hexdigest() != sha512 or os.stat(tmp).st_size != size:
                raise R13Error(f"blob {sha512[:16]}... read back from the database does not verify")
            make_private_dirs(final.parent)
            os.replace(tmp, final)
            return final
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def read(self, sha512: str) -> bytes | None:
        """The blob's bytes from the database, or None if absent."""
        h = _check_hex(sha512)
        rows = self.db.fetchall(
            "SELECT c.data FROM blobs b JOIN blob_chunks c ON c.sha512 = b.sha512 "
            "WHERE b.sha512 = %s ORDER BY c.seq",
            (h,),
        )
        if not rows:
            exists = self.db.fetchone("SELECT size FROM blobs WHERE sha512 = %s", (h,))
            return b"" if exists is not None else None
        return b"".join(bytes(r[0]) for r in rows)

    def delete(self, sha512: str) -> bool:
        """Remove the blob (rows and this node's copy); False if it was absent."""
        h = _check_hex(sha512)
        with self.db.transaction() as txn:
            gone = txn.execute("DELETE FROM blobs WHERE sha512 = %s", (h,)).rowcount
            txn.execute("DELETE FROM blob_chunks WHERE sha512 = %s", (h,))
        with contextlib.suppress(FileNotFoundError):
            self._cached(h).unlink()
        return gone > 0

    def hashes(self) -> Iterator[str]:
        """Every stored blob's sha512."""
        for (h,) in self.db.fetchall('SELECT sha512 FROM blobs ORDER BY sha512 COLLATE "C"'):
            yield str(h)

    # -- sweeping -------------------------------------------------------------------

    def hold(self) -> contextlib.AbstractContextManager[None]:
        """Shared, cluster-wide: no sweep or deletion on any node while held."""
        return self._lock.shared()

    def sweeping(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive, cluster-wide: waits for every node's holds to end."""
        return self._lock.exclusive()

    def _local_files(self) -> Iterator[Path]:
        return files_under((self._objects, self._former, self._tmp))

    def _is_row(self, path: Path) -> bool:
        return path.parent == ROW_PREFIX and _HEX_RE.fullmatch(path.name) is not None

    def _cached_copy(self, path: Path, known: set[str]) -> bool:
        h = path.name
        return h in known and path == objects_path(self._objects, h)

    def orphans(self, known: set[str], *, min_age: float) -> list[Path]:
        """Unreferenced rows (``ROW_PREFIX/<hex>``), copies, temp files older than ``min_age``."""
        cutoff = time.time() - min_age
        rows = self.db.fetchall("SELECT sha512 FROM blobs WHERE touched <= %s", (cutoff,))
        out = [ROW_PREFIX / str(h) for (h,) in rows if h not in known]
        for path in self._local_files():
            if self._cached_copy(path, known):
                continue
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_mtime <= cutoff:
                    out.append(path)
        return out

    def remove_orphans(self, paths: Iterable[Path], known: set[str], *, min_age: float) -> int:
        """Remove those of ``paths`` still unreferenced and old (inside :meth:`sweeping`)."""
        cutoff = time.time() - min_age
        removed = 0
        rows: list[str] = []
        for path in paths:
            if self._is_row(path):
                if path.name not in known:
                    rows.append(path.name)
                continue
            if self._cached_copy(path, known):
                continue
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_mtime <= cutoff:
                    os.unlink(path)
                    removed += 1
        if rows:
            with self.db.transaction() as txn:
                gone = txn.execute(
                    "DELETE FROM blobs WHERE sha512 = ANY(%s) AND touched <= %s RETURNING sha512",
                    (rows, cutoff),
                ).fetchall()
                hashes = [g[0] for g in gone]
                txn.execute("DELETE FROM blob_chunks WHERE sha512 = ANY(%s)", (hashes,))
            for h in hashes:
                with contextlib.suppress(FileNotFoundError):
                    self._cached(h).unlink()
            removed += len(hashes)
        return removed

    def prune(self) -> int:
        """Remove empty directories of this node's copies (and the former layout's top,
        once empty)."""
        return prune_empty(((self._objects, True), (self._former, False)))
