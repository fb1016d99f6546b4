"""Builders for registry tests: real .tgz files and the publish bodies npm sends.

The packages and publish documents come from r13core/npm_pack.py (shared with the
benchmarks); the raw tar helpers at the end build hostile archives tarfile will not write.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from r13core import npm_pack
from r13core.audit import Actor
from r13core.config import DEFAULT_FEATURES, Config13, Feature
from r13core.names import PackageName
from r13core.registry import Registry
from r13core.tarball import sri_sha512

sri = sri_sha512  # the sha512 SRI string of some bytes


def make_tgz(files: dict[str, bytes | str], *, top: str = "package", mtime: int = 0) -> bytes:
    """A gzip'd tar with ``files`` (paths relative to ``top``; top="" for none)."""
    return npm_pack.pack(files, top=top, mtime=mtime)


def package_json(name: str, version: str, **extra: Any) -> str:
    """A package.json text."""
    return json.dumps({"name": name, "version": version, **extra})


def package_tgz(
    name: str, version: str, *, extra_files: dict[str, bytes | str] | None = None, **manifest: Any
) -> bytes:
    """A tarball as `npm pack` makes: package/package.json plus files."""
    files: dict[str, bytes | str] = {
        "index.js": f"module.exports = {json.dumps(name + '@' + version)};\n"
    }
    files.update(extra_files or {})
    return npm_pack.package_tarball({"name": name, "version": version, **manifest}, files)


def publish_body(
    name: str,
    version: str,
    tgz: bytes | None = None,
    *,
    tag: str = "latest",
    manifest: dict[str, Any] | None = None,
    attachment_name: str | None = None,
    with_dist: bool = True,
) -> dict[str, Any]:
    """The JSON body `npm publish` PUTs for ``name@version`` (libnpmpublish's shape)."""
    if tgz is None:
        tgz = package_tgz(name, version, **(manifest or {}))
    bare = name.rsplit("/", 1)[-1]
    man = {"name": name, "version": version, "description": f"the {bare} package"}
    return npm_pack.publish_document(
        {**man, **(manifest or {})},
        tgz,
        registry="http://elsewhere.invalid",
        tag=tag,
        access=None,
        attachment=attachment_name,
        with_dist=with_dist,
    )


class LiveConfig:
    """A stand-in for the live record: tests flip flags between calls."""

    def __init__(self, *flags: Feature) -> None:
        self.value = Config13(feature_flags=int(DEFAULT_FEATURES))
        for flag in flags:
            self.set(flag, True)

    def set(self, flag: Feature, on: bool) -> None:
        """Turn ``flag`` on or off."""
        bits = self.value.feature_flags
        bits = bits | int(flag) if on else bits & ~int(flag)
        self.value = Config13(feature_flags=bits & 0xFFFFFFFF)

    def __call__(self) -> Config13:
        return self.value


PUBLIC_URL = "http://r13.test:4873"


def open_registry(data_dir: Path, config: LiveConfig | None = None, **kw: Any) -> Registry:
    """A registry on SQLite + files under ``data_dir``, as a worker opens one."""
    return Registry.open(data_dir, public_url=PUBLIC_URL, config=config or LiveConfig(), **kw)


def registry_with(data_dir: Path, name: str, *versions: str, owner: str = "alice") -> Registry:
    """:func:`open_registry` with ``versions`` of ``name`` published by ``owner``."""
    registry = open_registry(data_dir)
    for version in versions:
        registry.put_package(
            PackageName.parse(name), publish_body(name, version), actor=Actor(owner)
        )
    return registry


def files_under(root: Path) -> list[Path]:
    """Every regular file below ``root`` (for "nothing left behind" checks)."""
    return sorted(p for p in root.rglob("*") if p.is_file())


# -- raw tar building (hostile archives tarfile will not write) --------------------------

POSIX_MAGIC = b"ustar\x0000"
GNU_MAGIC = b"ustar  \x00"


def tar_header(
    name: str | bytes,
    *,
    size: int = 0,
    kind: bytes = b"0",
    magic: bytes = POSIX_MAGIC,
    prefix: bytes = b"",
    patch: dict[int, bytes] | None = None,
    checksum: int | None = None,
) -> bytes:
    """One 512-byte header; ``patch`` overwrites bytes at offsets, ``checksum`` forces one."""
    raw = name.encode() if isinstance(name, str) else name
    block = bytearray(512)
    block[0 : len(raw[:100])] = raw[:100]
    block[100:108] = b"0000644\x00"
    block[108:116] = b"0000000\x00"
    block[116:124] = b"0000000\x00"
    block[124:136] = f"{size:011o}\x00".encode()
    block[136:148] = b"00000000000\x00"
    block[156:157] = kind
    block[257:265] = magic
    block[345 : 345 + len(prefix)] = prefix
    for offset, value in (patch or {}).items():
        block[offset : offset + len(value)] = value
    block[148:156] = b" " * 8
    total = sum(block) if checksum is None else checksum
    block[148:156] = f"{total:06o}\x00 ".encode()
    return bytes(block)


def tar_member(name: str | bytes, data: bytes = b"", **kw: Any) -> bytes:
    """A header and its data, padded to 512."""
    kw.setdefault("size", len(data))
    pad = -len(data) % 512
    return tar_header(name, **kw) + data + bytes(pad)


def pax_records(records: dict[str, str] | list[tuple[str, str]]) -> bytes:
    """pax ``<len> key=value\\n`` records."""
    out = b""
    items = records.items() if isinstance(records, dict) else records
    for key, value in items:
        body = f" {key}={value}\n".encode()
        n = len(body) + 1
        while len(str(n).encode()) + len(body) != n:
            n += 1
        out += str(n).encode() + body
    return out


def pax_member(records: dict[str, str] | list[tuple[str, str]], *, kind: bytes = b"x") -> bytes:
    """A pax extended header (``x``, or ``g`` for a global one)."""
    return tar_member("PaxHeader/entry", pax_records(records), kind=kind)


def gnu_long_name(name: str) -> bytes:
    """A GNU ``L`` header carrying the next entry's long name."""
    return tar_member("././@LongLink", name.encode() + b"\x00", kind=b"L", magic=GNU_MAGIC)


def raw_tgz(*members: bytes, end: bytes = bytes(1024)) -> bytes:
    """Gzip of ``members`` followed by ``end`` (two zero blocks: the end-of-archive marker)."""
    return gzip.compress(b"".join(members) + end, mtime=0)


def manifest_member(name: str = "a", version: str = "1.0.0", **extra: Any) -> bytes:
    """``package/package.json`` as a raw member."""
    return tar_member("package/package.json", package_json(name, version, **extra).encode())
