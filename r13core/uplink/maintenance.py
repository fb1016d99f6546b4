"""Keeping the uplink cache: ``r13 cache stats | prune | verify`` (app/cli/cache_cmd.py).

* :func:`stats` — how much is cached, how old, and the breaker's state;
* :func:`prune` — forget what was fetched before a cutoff (everything without
  one): packuments and tarball entries, and the tarball files nothing else
  refers to (a local tarball with the same bytes keeps its file);
* :func:`verify` — re-hash every cached tarball file; a file that is missing or
  whose bytes no longer match its sha512 is forgotten (and the file removed,
  unless a local tarball row still names it), so the next request fetches it
  again from the upstream.

Files go only under the blob store's exclusive lock (``BlobStore.sweeping``),
like every other deletion of blobs (r13core/registry/maintenance.py).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from r13core.errors import InvalidValue
from r13core.storage.blobs import BlobStore
from r13core.uplink.service import UplinkStorage

_UNITS: Final = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION: Final = re.compile(r"(\d+)\s*([smhdw]?)")


def parse_duration_ms(text: str) -> int:
    """``30d``, ``12h``, ``90m``, ``3600s`` or plain seconds, as milliseconds."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise InvalidValue(f"{text!r} is not a duration (like 30d, 12h, 90m, 3600s)")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


@dataclass
class PruneReport:
    """What a prune removed."""

    packuments: int = 0
    tarballs: int = 0
    files: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        """JSON-ready."""
        return {
            "packuments": self.packuments,
            "tarballs": self.tarballs,
            "files": self.files,
            "bytes": self.bytes,
        }


@dataclass
class VerifyReport:
    """What a verify found: files checked, and the entries it removed (``name@version``)."""

    checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    files_removed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "checked": self.checked,
            "corrupt": self.corrupt,
            "missing": self.missing,
            "files_removed": self.files_removed,
        }


def stats(storage: UplinkStorage) -> dict[str, Any]:
    """Counts and sizes of the cache."""
    counts = storage.cache_counts()
    return {
        "packuments": counts.packuments,
        "packument_bytes": counts.packument_bytes,
        "tarballs": counts.tarballs,
        "tarball_bytes": counts.tarball_bytes,
        "oldest_ms": counts.oldest_ms,
    }


def _delete_unreferenced(storage: UplinkStorage, blobs: BlobStore, hashes: set[str]) -> int:
    if not hashes:
        return 0
    removed = 0
    with blobs.sweeping():  # no publish or cache fill is between its put and its row now
        for sha512 in hashes - storage.blobs_in_use(hashes):
            removed += blobs.delete(sha512)
    return removed


def prune(
    storage: UplinkStorage, blobs: BlobStore, *, older_than_ms: int | None, now_ms: int
) -> PruneReport:
    """Forget cached packuments and tarballs fetched ``older_than_ms`` ago or earlier."""
    cutoff = now_ms - older_than_ms if older_than_ms is not None else None
    report = PruneReport()
    for name, kind, fetched, _size in list(storage.cached_packuments()):
        if cutoff is None or fetched <= cutoff:
            report.packuments += storage.remove_packument(name, kind)
    doomed: dict[str, int] = {}
    for entry in list(storage.cached_tarballs()):
        old = cutoff is None or entry.fetched_ms <= cutoff
        if old and storage.remove_tarball_entry(entry.name, entry.version):
            report.tarballs += 1
            doomed[entry.sha512] = entry.size
    gone_before = {h for h in doomed if blobs.path(h) is None}
    report.files = _delete_unreferenced(storage, blobs, set(doomed) - gone_before)
    kept = storage.blobs_in_use(set(doomed))
    report.bytes = sum(size for h, size in doomed.items() if h not in kept and h not in gone_before)
    return report


def _sha512_of(path: Any) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def verify(
    storage: UplinkStorage,
    blobs: BlobStore,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Re-hash every cached tarball; forget (and remove) those missing or corrupt."""
    report = VerifyReport()
    by_hash: dict[str, list[tuple[str, str]]] = {}
    for entry in storage.cached_tarballs():
        by_hash.setdefault(entry.sha512, []).append((entry.name, entry.version))
    bad: set[str] = set()
    total = len(by_hash)
    for n, (sha512, entries) in enumerate(sorted(by_hash.items()), start=1):
        path = blobs.path(sha512)
        labels = [f"{name}@{version}" for name, version in entries]
        if path is None:
            report.missing += labels
        else:
            report.checked += 1
            try:
                ok = _sha512_of(path) == sha512
            except FileNotFoundError:
                ok = False
            if not ok:
                report.corrupt += labels
                bad.add(sha512)
        if path is None or sha512 in bad:
            for name, version in entries:
                storage.remove_tarball_entry(name, version)
        if progress is not None:
            progress(n, total)
    report.files_removed = _delete_unreferenced(storage, blobs, bad)
    return report


__all__ = ["PruneReport", "VerifyReport", "parse_duration_ms", "prune", "stats", "verify"]
