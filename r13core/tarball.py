"""Checks on a published tarball: decoding, integrity, and a bounded, strict look inside.

The gzip is inflated here, a slice at a time, and the tar read as it streams
(r13core/tarstream.py): nothing is written to disk and only package.json files
are kept in memory. What is refused, and why (docs/registry-api.md, "Publish
checks"):

- sizes: the decoded .tgz (``max_tarball``), the inflated tar (``max_unpacked``),
  the number of entries (``max_entries``), and the compression ratio — once more
  than ``ratio_free`` bytes came out, output may not exceed ``max_ratio`` times
  the compressed input consumed so far, so a small bomb stops after a few MB;
- one gzip member and nothing after it;
- every entry under ``package/`` (what npm, pnpm, yarn and bun all pack; older
  tools' other top directories are refused so that the registry and the client
  agree on where package.json is); no absolute paths, ``..``, ``.`` or empty
  components, backslashes, NULs or control characters; at most 4096 bytes per
  path and 255 per component;
- two entries that name the same file — duplicates, or names that differ only
  in case or Unicode normalisation (one overwrites the other on macOS and
  Windows: a second ``PACKAGE.JSON`` would replace the package.json r13 read),
  or a file that is also used as a directory;
- ``package/package.json`` that is not a regular file, too large, not strict
  UTF-8 JSON (r13core/jsonsafe.py: no NaN, lone surrogates, repeated keys or
  nesting deeper than 64), or not an object.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from r13core import jsonsafe
from r13core.errors import InvalidPublish
from r13core.tarstream import DIRECTORY, FILE, TarEntry, read_tar

MiB: Final = 1024 * 1024
_TYPES_SUFFIXES: Final = (".d.ts", ".d.mts", ".d.cts")
TOP: Final = "package"
MAX_PATH: Final = 4096
MAX_COMPONENT: Final = 255
_MAX_NAMES: Final = 32 * MiB  # all entry names together (they are kept for the checks)
_IN_STEP: Final = 16 * 1024
_OUT_STEP: Final = 256 * 1024
_BAD_PATH_CHAR: Final = re.compile(r"[\x00-\x1f\x7f\\]")
_BUNDLED_MANIFEST: Final = re.compile(r"(?:.*/)?node_modules/(?:@[^/]+/)?[^/]+/package\.json")
INSTALL_SCRIPTS: Final = ("preinstall", "install", "postinstall")


@dataclass(frozen=True)
class Limits:
    """Size limits for a published tarball."""

    max_tarball: int = 100 * MiB  # decoded .tgz bytes
    max_unpacked: int = 1024 * MiB  # inflated tar stream
    max_entries: int = 50_000
    max_manifest: int = 4 * MiB  # each package.json
    max_ratio: int = 200  # inflated : compressed, once past ratio_free
    ratio_free: int = 16 * MiB  # inflated bytes allowed before the ratio applies


@dataclass(frozen=True)
class TarballInfo:
    """What the look inside found.

    ``files`` are the regular files' paths below ``package/``; ``entries``
    counts files and directories; ``unpacked_size`` sums the files' sizes (as
    npm's ``dist.unpackedSize``); ``bundled_install`` says whether a package
    bundled under ``node_modules/`` has an install script (npm runs those too).
    """

    manifest: dict[str, Any]
    has_types: bool
    entries: int
    unpacked_size: int
    files: frozenset[str] = field(default_factory=frozenset)
    bundled_install: bool = False

    @property
    def file_count(self) -> int:
        """How many regular files (npm's ``dist.fileCount``)."""
        return len(self.files)


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


class _Inflater:
    """Inflates one gzip member on demand, bounded in size and in compression ratio.

    ``read(n)`` returns ``n`` bytes, fewer only at the end of the member. Input
    goes to zlib in small steps with a cap on each step's output, so at most
    ``_OUT_STEP`` bytes are inflated past a limit before it is noticed.
    """

    def __init__(self, data: bytes, limits: Limits) -> None:
        self._data = memoryview(data)
        self._fed = 0  # compressed bytes handed to zlib
        self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
        self._limits = limits
        self._buf = b""
        self._off = 0
        self.out = 0  # inflated bytes so far

    def _consumed(self) -> int:
        return self._fed - len(self._z.unconsumed_tail)

    def _step(self) -> bytes:
        tail = self._z.unconsumed_tail
        if tail:
            src: bytes | memoryview = tail
        else:
            src = self._data[self._fed : self._fed + _IN_STEP]
            self._fed += len(src)
            if not src:
                raise InvalidPublish("tarball: the gzip stream is truncated")
        try:
            piece = self._z.decompress(src, _OUT_STEP)
        except zlib.error as exc:
            raise InvalidPublish(f"tarball is not a readable gzip stream ({exc})") from None
        self.out += len(piece)
        limits = self._limits
        if self.out > limits.max_unpacked:
            raise InvalidPublish(
                f"tarball unpacks to more than the {limits.max_unpacked}-byte limit"
            )
        if self.out > limits.ratio_free and self.out > limits.max_ratio * self._consumed():
            raise InvalidPublish(
                f"tarball inflates more than {limits.max_ratio}:1 "
                f"({self.out} bytes from the first {self._consumed()}): refused as a gzip bomb"
            )
        return piece

    def read(self, n: int) -> bytes:
        have = len(self._buf) - self._off
        if have >= n:
            out = self._buf[self._off : self._off + n]
            self._off += n
            return out
        parts = [self._buf[self._off :]]
        while have < n and not self._z.eof:
            piece = self._step()
            parts.append(piece)
            have += len(piece)
        joined = b"".join(parts)
        self._buf, self._off = joined, min(n, len(joined))
        return joined[:n]

    def finish(self) -> None:
        """The member must be complete, and nothing may follow it (no second member)."""
        while not self._z.eof:
            if self._step():
                raise InvalidPublish("tarball: data follows the end-of-archive marker")
        if self._z.unused_data or self._fed < len(self._data):
            raise InvalidPublish("tarball: bytes follow the gzip stream (one gzip member only)")


def _fold(component: str) -> str:
    """The name a case-insensitive, normalising file system (macOS, Windows) sees."""
    return unicodedata.normalize("NFC", component).casefold()


def package_path(path: str) -> list[str]:
    """The components of an entry's path below ``package/``; InvalidPublish if unsafe."""
    shown = path[:200]
    if len(path.encode()) > MAX_PATH:
        raise InvalidPublish(f"tarball entry {shown!r}... is longer than {MAX_PATH} bytes")
    bad = _BAD_PATH_CHAR.search(path)
    if bad:
        raise InvalidPublish(
            f"tarball entry {shown!r} has an unsafe path (character {bad.group()!r})"
        )
    if path.startswith("/"):
        raise InvalidPublish(f"tarball entry {shown!r} has an unsafe path (absolute)")
    parts = path.removesuffix("/").split("/")
    if ".." in parts:
        raise InvalidPublish(f"tarball entry {shown!r} has an unsafe path ('..' climbs out)")
    if "" in parts or "." in parts:
        raise InvalidPublish(f"tarball entry {shown!r} has an unsafe path (empty or '.' part)")
    if parts[0] != TOP:
        raise InvalidPublish(
            f"tarball entry {shown!r} is not under package/ (the layout npm pack makes)"
        )
    if any(len(p.encode()) > MAX_COMPONENT for p in parts):
        raise InvalidPublish(f"tarball entry {shown!r} has a name longer than {MAX_COMPONENT}")
    return parts[1:]


class _Tree:
    """Every entry's folded path: catches duplicates, case twins and file/dir clashes."""

    def __init__(self) -> None:
        self.root: dict[str, Any] = {}
        self.names = 0

    def add(self, parts: list[str], kind: str, shown: str) -> None:
        self.names += sum(len(p) for p in parts)
        if self.names > _MAX_NAMES:
            raise InvalidPublish("tarball: the entry names are too long in total")
        if not parts:
            if kind != DIRECTORY:
                raise InvalidPublish("tarball entry 'package' must be a directory")
            return
        node = self.root
        for part in parts[:-1]:
            child = node.setdefault(_fold(part), {})
            if child is FILE:
                raise InvalidPublish(f"tarball entry {shown!r} is inside a path that is a file")
            node = child
        last = _fold(parts[-1])
        existing = node.get(last)
        if kind == FILE:
            if existing is not None:
                raise InvalidPublish(
                    f"tarball entry {shown!r} names the same file as an earlier entry "
                    "(a duplicate, or a name that differs only in case or Unicode form)"
                )
            node[last] = FILE
        elif existing is FILE:
            raise InvalidPublish(f"tarball entry {shown!r} is a directory and a file")
        elif existing is None:
            node[last] = {}


def _parse_manifest(raw: bytes, what: str) -> dict[str, Any]:
    doc = jsonsafe.loads(raw, what=what, error=InvalidPublish, allow_bom=True, unique_keys=True)
    if not isinstance(doc, dict):
        raise InvalidPublish(f"{what} is not a JSON object")
    return doc


def has_install_script(manifest: dict[str, Any], has_gyp: bool) -> bool:
    """Whether npm runs something at install for this package.json.

    An install hook (preinstall, install, postinstall), or a ``*.gyp`` file at
    the package root with no install/preinstall hook and ``gypfile`` not false:
    npm then runs ``node-gyp rebuild``.
    """
    scripts = manifest.get("scripts")
    hooks = scripts if isinstance(scripts, dict) else {}
    if any(isinstance(hooks.get(h), str) for h in INSTALL_SCRIPTS):
        return True
    return has_gyp and manifest.get("gypfile") is not False


def inspect_tarball(data: bytes, limits: Limits | None = None) -> TarballInfo:
    """Read the gzip'd tar in ``data`` within ``limits``; InvalidPublish naming any problem.

    Returns ``package/package.json``, the file list, whether the package ships
    TypeScript types (``types``/``typings`` in package.json, or any
    ``.d.ts``/``.d.mts``/``.d.cts`` file) and whether a bundled dependency has
    an install script.
    """
    limits = limits or Limits()
    if len(data) > limits.max_tarball:
        raise InvalidPublish(f"tarball is larger than the {limits.max_tarball}-byte limit")
    if data[:2] != b"\x1f\x8b":
        raise InvalidPublish("tarball is not gzip-compressed")
    stream = _Inflater(data, limits)

    def want(path: str, size: int) -> bool:
        if path == f"{TOP}/package.json":
            if size > limits.max_manifest:
                raise InvalidPublish("package.json in the tarball is too large")
            return True
        return size <= limits.max_manifest and bool(_BUNDLED_MANIFEST.fullmatch(path))

    tree = _Tree()
    files: set[str] = set()
    manifest: dict[str, Any] | None = None
    bundled: dict[str, dict[str, Any] | None] = {}  # package dir -> its package.json
    entries = unpacked = 0
    dts = False
    for entry in _entries(stream, limits, want):
        parts = package_path(entry.path)
        if parts == ["package.json"] and entry.kind != FILE:
            raise InvalidPublish("package/package.json in the tarball is not a regular file")
        tree.add(parts, entry.kind, entry.path)
        entries += 1
        if entry.kind != FILE:
            continue
        rel = "/".join(parts)
        files.add(rel)
        unpacked += entry.size
        dts = dts or rel.endswith(_TYPES_SUFFIXES)
        if rel == "package.json":
            assert entry.data is not None
            manifest = _parse_manifest(entry.data, "package.json in the tarball")
        elif _BUNDLED_MANIFEST.fullmatch(rel):
            bundled[rel.removesuffix("/package.json")] = _bundled(entry.data)
    stream.finish()
    if entries == 0:
        raise InvalidPublish("tarball is empty")
    if manifest is None:
        raise InvalidPublish("tarball has no package/package.json")
    bundled_install = any(
        doc is None or has_install_script(doc, f"{d}/binding.gyp" in files)
        for d, doc in bundled.items()
    )
    has_types = dts or bool(manifest.get("types") or manifest.get("typings"))
    return TarballInfo(manifest, has_types, entries, unpacked, frozenset(files), bundled_install)


def _bundled(raw: bytes | None) -> dict[str, Any] | None:
    """A bundled dependency's package.json; None (counted as "may run scripts") if unreadable."""
    if raw is None:
        return None
    try:
        return _parse_manifest(raw, "a bundled package.json")
    except InvalidPublish:
        return None


def _entries(
    stream: _Inflater, limits: Limits, want: Callable[[str, int], bool]
) -> Iterator[TarEntry]:
    try:
        yield from read_tar(stream.read, max_entries=limits.max_entries, want=want)
    except RecursionError:  # not expected (no recursion): never a 500 if it happens
        raise InvalidPublish("tarball: headers nest too deeply") from None
