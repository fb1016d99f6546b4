"""A backup's manifest: what it holds, with a hash of every part (``manifest.json``).

A backup is a directory::

    manifest.json                  this file, written last
    registry.sqlite3               SQLite: the snapshot (one self-contained file)
    database.dump                  PostgreSQL: pg_dump's custom format
    config.r13                     the 13-byte record
    signing/ring.json, *.pem       the registry's signing key ring
    signing/upstream-keys.json     the uplink's public keys, when cached
    admin.key                      the first admin key's secret, when the data dir has it
    blobs/sha512/ab/cd/<hex>       every tarball the snapshot refers to (files store)

The manifest names the format and its version, r13's version, the schema
version, the backend and blob store, the time, the record's bytes, every
table's row count and digest (r13core/backup/digest.py), every tarball's sha512
and size, and every other file's sha256 and size. Its ``seal`` is the sha256
of the rest in canonical JSON: an edited manifest is refused (a checksum, not a
signature: it catches damage and careless edits, not a forger; keep backups
where only their owner can write).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from r13core._version import __version__
from r13core.backup.digest import TableDigest, integrity_of
from r13core.datadir import FILE_MODE
from r13core.errors import BackupCorrupt

MANIFEST: Final = "manifest.json"
FORMAT: Final = "r13-backup"
FORMAT_VERSION: Final = 1
BACKENDS: Final = ("sqlite", "postgresql")
BLOB_STORES: Final = ("files", "database")
MAX_MANIFEST: Final = 1 << 30
_HEX128: Final = re.compile(r"[0-9a-f]{128}")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
# Relative paths a manifest may name: plain segments, no "..", no absolute path.
_REL: Final = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_.][A-Za-z0-9_.-]*")


def blob_path(sha512: str) -> str:
    """Where a tarball lives in a backup: the files store's layout before 2026-11-28, which
    the store still reads (r13core/storage/blobs.py), so a restore leaves them there."""
    return f"blobs/sha512/{sha512[:2]}/{sha512[2:4]}/{sha512}"


@dataclass(frozen=True)
class FileEntry:
    """A file of the backup other than a tarball: its size and sha256."""

    size: int
    sha256: str


@dataclass
class Manifest:
    """What a backup holds (see the module docstring)."""

    backend: str
    schema_version: int
    database: str
    """The database's file in the backup (``registry.sqlite3`` or ``database.dump``)."""
    blob_store: str
    record: bytes
    created: float
    tables: dict[str, TableDigest] = field(default_factory=dict)
    tarballs: dict[str, int] = field(default_factory=dict)
    """sha512 hex -> size of every tarball the snapshot's rows refer to."""
    files: dict[str, FileEntry] = field(default_factory=dict)
    r13_version: str = __version__

    @property
    def tarball_bytes(self) -> int:
        return sum(self.tarballs.values())

    def body(self) -> dict[str, Any]:
        """The manifest as JSON, without its seal."""
        created = datetime.fromtimestamp(self.created, UTC).isoformat(timespec="milliseconds")
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "r13_version": self.r13_version,
            "backend": self.backend,
            "schema_version": self.schema_version,
            "created": created.replace("+00:00", "Z"),
            "created_unix": self.created,
            "database": self.database,
            "blob_store": self.blob_store,
            "record": self.record.hex(),
            "tables": {name: d.as_json() for name, d in sorted(self.tables.items())},
            "tarballs": {
                "count": len(self.tarballs),
                "bytes": self.tarball_bytes,
                "items": [
                    {"sha512": h, "size": s, "integrity": integrity_of(h)}
                    for h, s in sorted(self.tarballs.items())
                ],
            },
            "files": {
                path: {"size": e.size, "sha256": e.sha256} for path, e in sorted(self.files.items())
            },
        }

    def to_bytes(self) -> bytes:
        body = self.body()
        return (json.dumps({**body, "seal": seal(body)}, indent=1) + "\n").encode()

    def write(self, directory: Path) -> None:
        """Write ``manifest.json`` into ``directory`` (fsynced)."""
        path = directory / MANIFEST
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(self.to_bytes())
            out.flush()
            os.fsync(out.fileno())

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        """The manifest of the backup in ``directory``; BackupCorrupt names what is wrong."""
        path = directory / MANIFEST
        if not directory.is_dir():
            raise BackupCorrupt(f"{directory} is not a directory (a backup is one)")
        try:
            if path.stat().st_size > MAX_MANIFEST:
                raise BackupCorrupt(f"{path} is too large to be a manifest")
            raw = path.read_bytes()
        except FileNotFoundError:
            raise BackupCorrupt(
                f"{directory} has no {MANIFEST}: not a backup, or one that never finished"
            ) from None
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BackupCorrupt(f"{MANIFEST} is not valid JSON ({exc})") from None
        return cls.from_json(obj)

    @classmethod
    def from_json(cls, obj: Any) -> Manifest:
        """Check the seal, then every field; BackupCorrupt names the first thing wrong."""
        if not isinstance(obj, dict):
            raise BackupCorrupt(f"{MANIFEST} is not a JSON object")
        if obj.get("format") != FORMAT:
            raise BackupCorrupt(f"{MANIFEST} is not an r13 backup manifest (format)")
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise BackupCorrupt(
                f"backup format version {version!r} is not one this r13 reads ({FORMAT_VERSION})"
            )
        body = {k: v for k, v in obj.items() if k != "seal"}
        if obj.get("seal") != seal(body):
            raise BackupCorrupt(
                f"{MANIFEST} was edited or damaged: its seal does not match its content"
            )
        try:
            return cls._parse(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupCorrupt(f"{MANIFEST} is malformed ({exc!r})") from None

    @classmethod
    def _parse(cls, body: dict[str, Any]) -> Manifest:
        backend, store = body["backend"], body["blob_store"]
        if backend not in BACKENDS or store not in BLOB_STORES:
            raise ValueError(f"backend {backend!r} / blob store {store!r}")
        record = bytes.fromhex(body["record"])
        if len(record) != 13:
            raise ValueError("the record is not 13 bytes")
        tables = {}
        for name, t in body["tables"].items():
            rows, digest = t["rows"], t["sha256"]
            if not isinstance(rows, int) or rows < 0 or not _HEX64.fullmatch(digest):
                raise ValueError(f"table {name!r}")
            tables[str(name)] = TableDigest(rows, digest)
        tarballs: dict[str, int] = {}
        for item in body["tarballs"]["items"]:
            h, size = item["sha512"], item["size"]
            if not isinstance(h, str) or not _HEX128.fullmatch(h):
                raise ValueError(f"tarball {h!r}")
            if not isinstance(size, int) or size < 0 or item["integrity"] != integrity_of(h):
                raise ValueError(f"tarball {h[:16]}...")
            tarballs[h] = size
        files = {}
        for path, e in body["files"].items():
            if not _REL.fullmatch(path) or ".." in path.split("/") or path == MANIFEST:
                raise ValueError(f"file name {path!r}")
            size, digest = e["size"], e["sha256"]
            if not isinstance(size, int) or size < 0 or not _HEX64.fullmatch(digest):
                raise ValueError(f"file {path!r}")
            files[path] = FileEntry(size, digest)
        database = body["database"]
        if database not in files:
            raise ValueError("the database file is not among the files")
        schema = body["schema_version"]
        created = body["created_unix"]
        if not isinstance(schema, int) or not isinstance(created, int | float):
            raise ValueError("schema_version / created_unix")
        return cls(
            backend=backend,
            schema_version=schema,
            database=database,
            blob_store=store,
            record=record,
            created=float(created),
            tables=tables,
            tarballs=tarballs,
            files=files,
            r13_version=str(body["r13_version"]),
        )


def seal(body: dict[str, Any]) -> str:
    """sha256 of ``body`` in canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
