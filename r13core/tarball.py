"""Checks on a published tarball: decoding, integrity, and a bounded look inside.

The tar is read as a stream (``tarfile`` mode ``r|``) from a gzip reader that
counts what it inflates, so a small bomb stops at the unpacked-size limit
instead of filling memory; the entry count is capped too. Nothing is ever
written to disk here.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import tarfile
import zlib
from dataclasses import dataclass
from typing import Any, Final

from r13core.errors import InvalidPublish

MiB: Final = 1024 * 1024
_TYPES_SUFFIXES: Final = (".d.ts", ".d.mts", ".d.cts")


@dataclass(frozen=True)
class Limits:
    """Size limits for a published tarball."""

    max_tarball: int = 100 * MiB  # decoded .tgz bytes
    max_unpacked: int = 1024 * MiB  # inflated tar stream
    max_entries: int = 50_000
    max_manifest: int = 4 * MiB  # package/package.json


@dataclass(frozen=True)
class TarballInfo:
    """What the look inside found."""

    manifest: dict[str, Any]
    has_types: bool
    entries: int
    unpacked_size: int


def sri_sha512(data: bytes) -> str:
    """The ``sha512-<base64>`` Subresource Integrity string of ``data``."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def sri_from_hex(sha512_hex: str) -> str:
    """The SRI string for a sha512 given as hex."""
    return "sha512-" + base64.b64encode(bytes.fromhex(sha512_hex)).decode()


def sha1_hex(data: bytes) -> str:
    """npm's legacy ``shasum``: sha1 as hex."""
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def decode_attachment(data: object, length: object, *, limit: int) -> bytes:
    """Strictly decode an attachment's base64 ``data`` and check it against ``length``."""
    if not isinstance(data, str) or not data:
        raise InvalidPublish("attachment data must be a non-empty base64 string")
    # 4 base64 characters carry 3 bytes: refuse before decoding anything too big.
    if len(data) > (limit + 2) // 3 * 4 + 4:
        raise InvalidPublish(f"attachment is larger than the {limit}-byte limit")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidPublish("attachment data is not valid base64") from None
    if len(raw) > limit:
        raise InvalidPublish(f"attachment is larger than the {limit}-byte limit")
    if length is not None:
        if isinstance(length, bool) or not isinstance(length, int):
            raise InvalidPublish("attachment length must be an integer")
        if length != len(raw):
            raise InvalidPublish(
                f"attachment length mismatch: says {length}, decodes to {len(raw)} bytes"
            )
    return raw


def check_integrity(data: bytes, dist: object) -> tuple[str, str]:
    """Check a manifest's ``dist.integrity``/``dist.shasum`` against ``data``, if given.

    Returns our own (integrity, shasum), which are what r13 stores.
    """
    integrity, shasum = sri_sha512(data), sha1_hex(data)
    if dist is None:
        return integrity, shasum
    if not isinstance(dist, dict):
        raise InvalidPublish("dist must be an object")
    claimed = dist.get("integrity")
    if claimed is not None:
        if not isinstance(claimed, str):
            raise InvalidPublish("dist.integrity must be a string")
        # An SRI string may list several hashes; every sha512 one must match.
        sha512s = [t for t in claimed.split() if t.startswith("sha512-")]
        if not sha512s:
            raise InvalidPublish("dist.integrity has no sha512 hash")
        for token in sha512s:
            if token.split("?", 1)[0] != integrity:
                raise InvalidPublish("dist.integrity (sha512) does not match the tarball")
    claimed_sha1 = dist.get("shasum")
    if claimed_sha1 is not None and (
        not isinstance(claimed_sha1, str) or claimed_sha1.lower() != shasum
    ):
        raise InvalidPublish("dist.shasum (sha1) does not match the tarball")
    return integrity, shasum


class _TooBig(Exception):
    pass


class _Bounded(io.RawIOBase):
    """A reader that fails once more than ``limit`` bytes came through."""

    def __init__(self, inner: gzip.GzipFile, limit: int) -> None:
        self._inner = inner
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        self.count += len(data)
        if self.count > self._limit:
            raise _TooBig
        buffer[: len(data)] = data
        return len(data)


def _inside_path(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise InvalidPublish(f"tarball entry {name!r} has an unsafe path")
    return parts


def inspect_tarball(data: bytes, limits: Limits | None = None) -> TarballInfo:
    """Read the gzip'd tar in ``data`` within ``limits``; InvalidPublish on any problem.

    Finds ``<top>/package.json`` (npm uses ``package/``; any single top directory is
    accepted), and whether the package ships TypeScript types (``types``/``typings``
    in package.json, or any ``.d.ts``/``.d.mts``/``.d.cts`` file).
    """
    limits = limits or Limits()
    if len(data) > limits.max_tarball:
        raise InvalidPublish(f"tarball is larger than the {limits.max_tarball}-byte limit")
    if data[:2] != b"\x1f\x8b":
        raise InvalidPublish("tarball is not gzip-compressed")
    stream = _Bounded(gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb"), limits.max_unpacked)
    manifest_raw: bytes | None = None
    manifest_name = ""
    entries = 0
    dts = False
    try:
        with tarfile.open(fileobj=io.BufferedReader(stream), mode="r|") as tar:
            for member in tar:
                entries += 1
                if entries > limits.max_entries:
                    raise InvalidPublish(f"tarball has more than {limits.max_entries} entries")
                parts = _inside_path(member.name)
                if not member.isfile():
                    continue
                if parts[-1].endswith(_TYPES_SUFFIXES):
                    dts = True
                if len(parts) == 2 and parts[1] == "package.json":
                    if manifest_raw is not None:
                        raise InvalidPublish(
                            f"tarball has two package.json files ({manifest_name}, {member.name})"
                        )
                    if member.size > limits.max_manifest:
                        raise InvalidPublish("package.json in the tarball is too large")
                    f = tar.extractfile(member)
                    assert f is not None  # a regular file
                    manifest_raw = f.read()
                    manifest_name = member.name
    except _TooBig:
        raise InvalidPublish(
            f"tarball unpacks to more than the {limits.max_unpacked}-byte limit"
        ) from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise InvalidPublish(f"tarball is not a readable gzip'd tar ({exc})") from None
    if entries == 0:
        raise InvalidPublish("tarball is empty")
    if manifest_raw is None:
        raise InvalidPublish("tarball has no package/package.json")
    try:
        manifest = json.loads(manifest_raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidPublish("package.json in the tarball is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise InvalidPublish("package.json in the tarball is not a JSON object")
    has_types = dts or bool(manifest.get("types") or manifest.get("typings"))
    return TarballInfo(manifest, has_types, entries, stream.count)
