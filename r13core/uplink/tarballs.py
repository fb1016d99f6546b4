"""A proxied tarball: fetched into a spool file while hashing, checked, then served or kept.

The bytes go from the upstream's socket into a temp file inside the blob
store's own temp directory (constant memory, any size, same file system as the
blobs), hashed as they arrive with sha512 (the blob address) and whatever the
packument's integrity names (sha512, sha384, sha256 or, for old versions,
sha1 ``shasum``). Only when the whole body is there and matches is anything
done with it: moved into the blob store (cache on) or sent from the temp file
(cache off). A mismatch, a truncated body or a reset deletes the file and
raises — the client gets a 502, never bad bytes, and nothing bad is cached.

(Why not forward bytes to the client as they arrive: once a 200 and some bytes
have gone out, a mismatch found at the end can only cut the connection, and
the client has already been handed bad bytes. Checking first costs the
client the tarball's transfer time from the upstream before its first byte;
for npm's tarballs — mostly tens of KB — that is the upstream's latency.)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from r13core.datadir import FILE_MODE
from r13core.errors import IntegrityMismatch, PayloadTooLarge, UpstreamError
from r13core.storage.uplink_cache import DistRecord
from r13core.uplink.client import Upstream

_SRI_ALGORITHMS: Final = ("sha512", "sha384", "sha256", "sha1")


@dataclass(frozen=True)
class Spooled:
    """A checked tarball in a temp file: its path, size and sha512 (hex)."""

    path: Path
    size: int
    sha512: str


def expected_digests(dist: DistRecord) -> dict[str, bytes]:
    """The digests the packument states, by algorithm (SRI entries and the sha1 shasum)."""
    wanted: dict[str, bytes] = {}
    for entry in dist.integrity.split():
        algorithm, _, b64 = entry.partition("-")
        b64 = b64.split("?", 1)[0]  # SRI options
        if algorithm in _SRI_ALGORITHMS and b64:
            try:
                wanted.setdefault(algorithm, base64.b64decode(b64, validate=True))
            except ValueError:
                continue
    shasum = dist.shasum.strip().lower()
    if len(shasum) == 40 and all(c in "0123456789abcdef" for c in shasum):
        wanted.setdefault("sha1", bytes.fromhex(shasum))
    return wanted


def spool(
    upstream: Upstream, dist: DistRecord, tmp_dir: Path, *, max_bytes: int, via: str = ""
) -> Spooled:
    """Fetch ``dist``'s tarball into ``tmp_dir`` and check it against the packument.

    UpstreamError (or its IntegrityMismatch, UpstreamTimeout) on any failure,
    with the temp file removed; PayloadTooLarge past ``max_bytes``.
    """
    wanted = expected_digests(dist)
    if not wanted:
        raise IntegrityMismatch(
            f"the upstream states no integrity for {dist.name}@{dist.version}: not served"
        )
    hashers = {a: hashlib.new(a) for a in wanted}
    sha512 = hashers.get("sha512") or hashlib.sha512()
    tmp = tmp_dir / f"uplink.{os.getpid()}.{time.monotonic_ns()}.tmp"
    size = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        try:
            with upstream.stream(upstream.path_of(dist.url), via=via) as (length, chunks):
                if length is not None and length > max_bytes:
                    raise PayloadTooLarge(f"the upstream's tarball is larger than {max_bytes}")
                for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(f"the upstream's tarball is larger than {max_bytes}")
                    for h in hashers.values():
                        h.update(chunk)
                    if "sha512" not in hashers:
                        sha512.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        for algorithm, digest in wanted.items():
            if hashers[algorithm].digest() != digest:
                raise IntegrityMismatch(
                    f"{dist.name}@{dist.version} from the upstream fails its {algorithm} "
                    "integrity: not served, not cached"
                )
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return Spooled(tmp, size, sha512.hexdigest())


__all__ = ["Spooled", "UpstreamError", "expected_digests", "spool"]
