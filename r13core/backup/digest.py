"""Canonical digests: one hash over a table's rows, and over a file's bytes.

A table's digest is the same whichever backend computed it and whichever
physical order its rows have: rows are read in the order of their primary key
(every column when there is none), and each value is written with a type tag
and its length, so no two different tables hash alike (``'a', 'bc'`` is not
``'ab', 'c'``; ``1`` is not ``'1'``). The backup stores, per table, the row
count and this digest (r13core/backup/manifest.py); a restore recomputes both
on what it restored and refuses any difference.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

CHUNK: Final = 1 << 20
_LEN = struct.Struct(">Q")


@dataclass(frozen=True)
class TableDigest:
    """A table's row count and the sha256 of its rows in canonical order."""

    rows: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "sha256": self.sha256}


def _value(v: Any) -> bytes:
    if v is None:
        return b"N"
    if isinstance(v, bool):  # before int: True is an int
        return b"T" if v else b"F"
    if isinstance(v, int):
        text = str(v).encode()
        return b"I" + _LEN.pack(len(text)) + text
    if isinstance(v, float):
        text = v.hex().encode()  # exact, unlike repr on every platform
        return b"R" + _LEN.pack(len(text)) + text
    if isinstance(v, str):
        data = v.encode("utf-8", "surrogatepass")
        return b"S" + _LEN.pack(len(data)) + data
    if isinstance(v, bytes | bytearray | memoryview):
        data = bytes(v)
        return b"B" + _LEN.pack(len(data)) + data
    if isinstance(v, decimal.Decimal | datetime.datetime | datetime.date | datetime.time):
        text = str(v).encode()
        return b"D" + _LEN.pack(len(text)) + text
    # JSON values a driver decodes (PostgreSQL's json/jsonb): their canonical text.
    text = json.dumps(v, sort_keys=True, separators=(",", ":"), default=str).encode()
    return b"J" + _LEN.pack(len(text)) + text


def digest_rows(rows: Iterable[tuple[Any, ...]]) -> TableDigest:
    """The :class:`TableDigest` of ``rows`` (already in canonical order)."""
    h = hashlib.sha256()
    count = 0
    for row in rows:
        h.update(_LEN.pack(len(row)))
        for v in row:
            h.update(_value(v))
        count += 1
    return TableDigest(count, h.hexdigest())


def integrity_of(sha512_hex: str) -> str:
    """npm's ``integrity`` string (``sha512-<base64>``) of a sha512 hex digest."""
    return "sha512-" + base64.b64encode(bytes.fromhex(sha512_hex)).decode()


def copy_hashing(
    src: BinaryIO,
    dst: BinaryIO | None,
    algorithm: str,
    advance: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (or only read it) and hash the bytes; (hex digest, size)."""
    h = hashlib.new(algorithm)
    size = 0
    while chunk := src.read(CHUNK):
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
        size += len(chunk)
        if advance is not None:
            advance(len(chunk))
    return h.hexdigest(), size


def hash_file(path: Path, algorithm: str = "sha256") -> tuple[str, int]:
    """(hex digest, size) of the file at ``path``."""
    with open(path, "rb") as f:
        return copy_hashing(f, None, algorithm)


def sync_filesystem(path: Path) -> None:
    """Flush every write to the file system holding ``path`` (Linux ``syncfs``; else ``sync``).

    One call instead of an fsync per file: a backup of thousands of tarballs would
    otherwise spend most of its time waiting for the disk once per file. Callers rename
    the finished tree into place (and fsync that directory) only after this returns.
    """
    import ctypes
    import ctypes.util

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        syncfs = getattr(libc, "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    except OSError:
        os.sync()
    finally:
        os.close(fd)
