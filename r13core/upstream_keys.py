"""The upstream registry's public signing keys: fetched from its ``/-/npm/v1/keys``, cached.

r13 serves them beside its own at ``/-/npm/v1/keys`` (so ``npm audit signatures``
can check proxied versions, which keep the upstream's signatures), and the uplink
checks every proxied version against them before serving or caching it
(r13core/signatures.py ``verify_version``).

The keys change rarely (npm's last rotation was announced months ahead), so a
copy younger than ``max_age`` is used as it is. Each process keeps one in memory;
the last good answer is also written to ``<data>/signing/upstream-keys.json`` so
every worker and a restart start from it. When a fetch fails (the upstream is
down, slow, or answers something that is not a keys document) the last good copy
is used, whatever its age, and the next attempt waits ``retry_after`` seconds, so
a dead upstream costs one timeout per ``retry_after``, not one per request.
Never fetched and unreachable: no upstream keys (the answer says so).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from r13core.datadir import FILE_MODE, make_private_dirs, open_private
from r13core.errors import InvalidValue
from r13core.signatures import PublicKey, parse_keys

log = logging.getLogger("r13.signing")

CACHE_FILE: Final = "upstream-keys.json"
MAX_KEYS_DOC: Final = 256 * 1024
Fetch = Callable[[str, float], bytes]
"""``fetch(url, timeout)``: the body of a 200 answer; raises OSError (or ValueError) otherwise."""


def http_fetch(url: str, timeout: float) -> bytes:
    """GET ``url`` with ``timeout`` (urllib), at most :data:`MAX_KEYS_DOC` bytes."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "r13 (signing keys)"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        body: bytes = answer.read(MAX_KEYS_DOC + 1)
    if len(body) > MAX_KEYS_DOC:
        raise ValueError(f"{url} answered more than {MAX_KEYS_DOC} bytes")
    return body


@dataclass(frozen=True)
class Fetched:
    """Keys and when they were fetched (Unix time)."""

    keys: tuple[PublicKey, ...]
    at: float


class UpstreamKeys:
    """The upstream's keys for ``uplink_url`` (``https://registry.npmjs.org``)."""

    def __init__(
        self,
        uplink_url: str,
        cache_dir: Path,
        *,
        fetch: Fetch = http_fetch,
        clock: Callable[[], float] = time.time,
        max_age: float = 3600.0,
        retry_after: float = 60.0,
        timeout: float = 5.0,
    ) -> None:
        if not uplink_url.startswith(("http://", "https://")):
            raise InvalidValue(f"uplink URL {uplink_url!r} must start with http:// or https://")
        self.url = uplink_url.rstrip("/") + "/-/npm/v1/keys"
        self._cache = Path(cache_dir) / CACHE_FILE
        self._fetch = fetch
        self._clock = clock
        self.max_age = max_age
        self.retry_after = retry_after
        self.timeout = timeout
        self._lock = threading.Lock()
        self._held: Fetched | None = None
        self._failed_at: float | None = None

    def _read_cache(self) -> Fetched | None:
        try:
            fd = open_private(self._cache, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                doc = json.loads(f.read(MAX_KEYS_DOC * 2))
            return Fetched(tuple(parse_keys(doc)), float(doc["fetched"]))
        except (ValueError, KeyError, TypeError):
            return None  # a damaged copy is as good as none

    def _write_cache(self, fetched: Fetched) -> None:
        make_private_dirs(self._cache.parent)
        doc = {"fetched": fetched.at, "keys": [k.as_json() for k in fetched.keys]}
        tmp = self._cache.with_name(f".{CACHE_FILE}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(json.dumps(doc).encode())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._cache)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def current(self) -> list[PublicKey]:
        """The upstream's keys: fresh, cached, or (after a failure) the last good copy."""
        now = self._clock()
        with self._lock:
            held = self._held
            if held is None:
                held = self._held = self._read_cache()
            if held is not None and now - held.at < self.max_age:
                return list(held.keys)
            if self._failed_at is not None and now - self._failed_at < self.retry_after:
                return list(held.keys) if held is not None else []
            # Another worker may have fetched meanwhile.
            disk = self._read_cache()
            if disk is not None and now - disk.at < self.max_age:
                self._held = disk
                return list(disk.keys)
            try:
                keys = parse_keys(json.loads(self._fetch(self.url, self.timeout)))
            except (OSError, ValueError) as exc:
                self._failed_at = now
                log.warning("r13: could not fetch %s (%s); using the last good copy", self.url, exc)
                return list(held.keys) if held is not None else []
            self._failed_at = None
            self._held = Fetched(tuple(keys), now)
            try:
                self._write_cache(self._held)
            except OSError as exc:
                log.warning("r13: could not save %s: %s", self._cache, exc)
            return keys


__all__ = ["CACHE_FILE", "Fetch", "Fetched", "UpstreamKeys", "http_fetch"]
