"""The uplink: packages r13 does not have, fetched from the upstream, checked and cached.

The registry façade (r13core/registry/service.py) asks it only after the local
storage said "no such package", and only while PROXY_MODE is on; everything
here is read from the live record on each call, so toggling PROXY_MODE or
CACHE_ENABLED takes effect on the next request. docs/uplinks.md is the user's
view; the jobs are one module each:

* r13core/uplink/client.py — HTTP to the upstream (timeouts, pool, ``Via``);
* r13core/uplink/breaker.py — the circuit breaker shared by every worker;
* r13core/uplink/flight.py — single flight, in a worker and across workers;
* r13core/uplink/policy.py — which names may be asked of the upstream at all;
* r13core/uplink/documents.py — tarball links rewritten, dists noted;
* r13core/uplink/tarballs.py — a tarball spooled, hashed and checked;
* r13core/uplink/maintenance.py — ``r13 cache stats | prune | verify``;
* r13core/uplink/mirror.py — ``r13 mirror``.

What a caller gets back says how it was served (``cache``: ``hit``, ``miss``,
``revalidated``, ``stale``), and a stale answer carries the ``Warning`` the app
sends with it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from r13core.access import Policy
from r13core.audit import Actor, AuditLog
from r13core.config import Config13, Feature
from r13core.errors import (
    IntegrityMismatch,
    InvalidName,
    LoopDetected,
    NotFound,
    UpstreamError,
)
from r13core.metrics import Event
from r13core.names import PackageName
from r13core.registry.render import ABBREVIATED, FULL, Rendered
from r13core.settings import UplinkSettings
from r13core.storage.blobs import BlobStore
from r13core.storage.packages import PackageStorage
from r13core.storage.uplink_cache import (
    CachedPackument,
    CachedTarball,
    DistRecord,
    UplinkCacheStorage,
)
from r13core.tarball import sri_from_hex
from r13core.uplink.breaker import CircuitBreaker
from r13core.uplink.client import Upstream
from r13core.uplink.documents import VersionCheck, parse_document, rewrite, version_document
from r13core.uplink.flight import SingleFlight, across_workers
from r13core.uplink.policy import ProxyPolicy
from r13core.uplink.tarballs import spool

log = logging.getLogger("r13.uplink")

INSTALL_ACCEPT: Final = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
STALE_WARNING: Final = '110 r13 "Response is Stale"'
REVALIDATION_FAILED: Final = '111 r13 "Revalidation Failed"'
_LRU: Final = 4096
_MEMO_BYTES: Final = 64 * 1024 * 1024


class UplinkStorage(PackageStorage, UplinkCacheStorage, Protocol):
    """What the uplink reads and writes: local packages (to stay away) and its cache."""


@dataclass(frozen=True)
class Proxied:
    """A packument or version document from the upstream, as r13 serves it."""

    body: bytes
    gzip: bytes
    etag: str
    cache: str
    """``hit``, ``miss``, ``revalidated`` or ``stale`` (the upstream failed: see ``warning``)."""
    warning: str | None = None
    abbreviated: bool = False
    """Whether ``body`` is the abbreviated (install) document."""


@dataclass(frozen=True)
class ProxiedBlob:
    """A checked upstream tarball to send. ``temporary``: delete ``path`` once it is open."""

    path: Path
    size: int
    integrity: str
    etag: str
    cache: str
    temporary: bool = False


Counter = Callable[[Event, int], None]


def _now_ms() -> int:
    return int(time.time() * 1000)


class Uplink:
    """One upstream registry behind this one (R13_UPLINK_URL)."""

    def __init__(
        self,
        settings: UplinkSettings,
        storage: UplinkStorage,
        blobs: BlobStore,
        *,
        data_dir: Path,
        public_url: str,
        config: Callable[[], Config13],
        policy: Policy | None = None,
        via: str = "r13",
        max_tarball: int = 100 * 1024 * 1024,
        audit: AuditLog | None = None,
        clock: Callable[[], int] = _now_ms,
        count: Counter | None = None,
        check_version: VersionCheck | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.blobs = blobs
        self.data_dir = Path(data_dir)
        self.public_url = public_url.rstrip("/")
        self.config = config
        self.clock = clock
        self.count = count
        self.audit = audit
        self.max_tarball = max_tarball
        self.check_version = check_version
        """Checks each upstream version (its registry signature, r13core/signatures.py)
        before it is served or cached; a refused version is left out."""
        self.client = Upstream(
            settings.url,
            token=settings.token,
            via=via,
            connect_timeout=settings.connect_timeout_ms / 1000,
            timeout=settings.timeout_ms / 1000,
            pool_size=settings.pool_size,
        )
        self.breaker = CircuitBreaker(
            self.data_dir,
            max_fails=settings.max_fails,
            fail_timeout_ms=settings.fail_timeout_ms,
            probe_timeout_ms=2 * settings.timeout_ms + settings.connect_timeout_ms,
            clock=clock,
        )
        self.policy = ProxyPolicy(
            storage,
            policy or Policy(),
            uplink_name=settings.name,
            private_scopes=settings.private_scopes,
        )
        self._flight: SingleFlight[Any] = SingleFlight()
        self._dists: OrderedDict[tuple[str, str], DistRecord] = OrderedDict()
        self._docs: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._memo: OrderedDict[tuple[str, str], CachedPackument] = OrderedDict()
        self._memo_bytes = 0
        self._lock = threading.Lock()

    # -- flags --------------------------------------------------------------------------

    def enabled(self) -> bool:
        """PROXY_MODE: whether names missing here are fetched from the upstream."""
        return self.config().has(Feature.PROXY_MODE)

    def caching(self) -> bool:
        """CACHE_ENABLED: whether what comes from the upstream is kept."""
        return self.config().has(Feature.CACHE_ENABLED)

    # -- bookkeeping --------------------------------------------------------------------

    def _count(self, event: Event, n: int = 1) -> None:
        if self.count is not None:
            try:
                self.count(event, n)
            except Exception:  # counting never fails a request
                log.debug("counting %s failed", event, exc_info=True)

    def _remember_dists(self, dists: list[DistRecord]) -> None:
        with self._lock:
            for d in dists:
                self._dists[(d.name, d.version)] = d
                self._dists.move_to_end((d.name, d.version))
            while len(self._dists) > _LRU:
                self._dists.popitem(last=False)

    def call_upstream(self, work: Callable[[], Any]) -> Any:
        """Run one upstream exchange through the breaker, counting it (audit, search)."""
        return self._upstream(work)

    def _upstream(self, work: Callable[[], Any]) -> Any:
        """Run one upstream exchange through the breaker, counting it."""
        if not self.breaker.allow():
            self._count(Event.UPLINK_ERRORS)
            state = self.breaker.state()
            raise UpstreamError(
                "the upstream is unavailable (circuit breaker open, next try in "
                f"{max(1, state.retry_in_ms // 1000)} s)"
            )
        started = time.monotonic_ns()
        try:
            result = work()
        except IntegrityMismatch:
            self.breaker.success()  # it answered; the bytes were bad, not the link
            self._count(Event.UPLINK_ERRORS)
            raise
        except UpstreamError as exc:
            self.breaker.failure()
            self._count(Event.UPLINK_ERRORS)
            log.warning("uplink %s: %s", self.settings.url, exc)
            raise
        self.breaker.success()
        self._count(Event.UPLINK_REQUESTS)
        self._count(Event.UPLINK_LATENCY_NS, time.monotonic_ns() - started)
        return result

    def _guard(self, name: PackageName, via: str) -> None:
        """NotFound unless ``name`` may come from the upstream; LoopDetected on a loop."""
        reason = self.policy.why_not(name)
        if reason is not None:
            raise NotFound(f"package {name} not found")
        if via and self.client.loops(via):
            raise LoopDetected(
                f"this request for {name} already passed through this registry (Via: {via})"
            )

    # -- packuments ---------------------------------------------------------------------

    def packument(self, name: PackageName, *, abbreviated: bool, via: str = "") -> Proxied:
        """The upstream's packument of ``name`` (cached, revalidated, or stale on error)."""
        self._guard(name, via)
        kind = ABBREVIATED if abbreviated else FULL
        caching = self.caching()
        cached = self._cached_packument(name, kind) if caching else None
        if cached is not None and self._fresh(cached):
            self._count(Event.CACHE_HITS)
            return _served(cached, "hit")
        self._count(Event.CACHE_MISSES)
        try:
            result: Proxied
            result, _shared = self._flight.do(
                ("doc", str(name), kind),
                lambda: self._refresh(name, kind, cached, via, caching),
            )
            return result
        except UpstreamError:
            stale = cached
            if stale is None and caching and abbreviated:
                stale = self.storage.cached_packument(str(name), FULL)  # npm reads either
            if stale is None:
                raise
            self._count(Event.UPLINK_STALE)
            return _served(stale, "stale", REVALIDATION_FAILED)

    def _cached_packument(self, name: PackageName, kind: str) -> CachedPackument | None:
        """The cached packument: from this process's memo while fresh, else the storage.

        The memo saves reading the document from the database on every hit; a copy
        another worker refreshed meanwhile is seen once this one's is past the max age
        (a packument is served up to the max age old either way).
        """
        key = (str(name), kind)
        with self._lock:
            memo = self._memo.get(key)
        if memo is not None and self._fresh(memo):
            return memo
        found = self.storage.cached_packument(str(name), kind)
        self._remember(found, key)
        return found

    def _remember(self, record: CachedPackument | None, key: tuple[str, str]) -> None:
        with self._lock:
            old = self._memo.pop(key, None)
            if old is not None:
                self._memo_bytes -= len(old.body) + len(old.gzip)
            if record is None:
                return
            size = len(record.body) + len(record.gzip)
            if size > _MEMO_BYTES // 8:
                return  # too big to keep: a few would push everything else out
            self._memo[key] = record
            self._memo_bytes += size
            while len(self._memo) > _LRU or self._memo_bytes > _MEMO_BYTES:
                _, dropped = self._memo.popitem(last=False)
                self._memo_bytes -= len(dropped.body) + len(dropped.gzip)

    def _fresh(self, cached: CachedPackument) -> bool:
        return self.clock() - cached.fetched_ms < self.settings.max_age_ms

    def _refresh(
        self,
        name: PackageName,
        kind: str,
        cached: CachedPackument | None,
        via: str,
        caching: bool,
    ) -> Proxied:
        if not caching:
            return self._fetch_document(name, kind, None, via, caching)
        with across_workers(self.data_dir, f"doc\0{name}\0{kind}"):
            again = self.storage.cached_packument(str(name), kind)
            if again is not None and self._fresh(again):
                self._remember(again, (str(name), kind))
                return _served(again, "hit")  # another worker fetched it meanwhile
            return self._fetch_document(name, kind, again or cached, via, caching)

    def _fetch_document(
        self,
        name: PackageName,
        kind: str,
        cached: CachedPackument | None,
        via: str,
        caching: bool,
    ) -> Proxied:
        abbreviated = kind == ABBREVIATED
        accept = INSTALL_ACCEPT if abbreviated else "application/json"
        etag = cached.upstream_etag if cached is not None else None
        path = self.client.package_path(str(name))
        answer = self._upstream(
            lambda: self.client.get_document(path, accept=accept, etag=etag, via=via)
        )
        now = self.clock()
        key = (str(name), kind)
        if answer is None:
            if cached is not None:
                self.storage.remove_packument(str(name), kind)  # gone upstream
                self._remember(None, key)
            raise NotFound(f"package {name} not found (here or upstream)")
        if answer.status == 304:
            if cached is None:
                raise UpstreamError("the upstream answered 304 to an unconditional request")
            self.storage.touch_packument(str(name), kind, now)
            self._remember(
                CachedPackument(
                    cached.name,
                    kind,
                    cached.upstream_etag,
                    now,
                    cached.body,
                    cached.gzip,
                    cached.etag,
                ),
                key,
            )
            return _served(cached, "revalidated")
        doc = parse_document(name, answer.body)
        rendered, dists = rewrite(name, doc, self.public_url, self.check_version)
        self._remember_dists(dists)
        if caching:
            record = CachedPackument(
                str(name), kind, answer.etag, now, rendered.body, rendered.gzip, rendered.etag
            )
            self.storage.save_packument(record, dists)
            self._remember(record, key)
        return Proxied(rendered.body, rendered.gzip, rendered.etag, "miss", None, abbreviated)

    def version(self, name: PackageName, version_or_tag: str, *, via: str = "") -> Proxied:
        """One version document of an upstream package, by version or dist-tag."""
        full = self.packument(name, abbreviated=False, via=via)
        key = (str(name), full.etag)
        with self._lock:
            doc = self._docs.get(key)
        if doc is None:
            doc = json.loads(full.body)
            with self._lock:
                self._docs[key] = doc
                while len(self._docs) > 16:
                    self._docs.popitem(last=False)
        manifest = version_document(name, doc, version_or_tag)
        if manifest is None:
            raise NotFound(f"version {version_or_tag!r} of {name} not found")
        rendered = Rendered.of(manifest)
        return Proxied(rendered.body, rendered.gzip, rendered.etag, full.cache, full.warning)

    # -- tarballs -----------------------------------------------------------------------

    def tarball(self, name: PackageName, filename: str, *, via: str = "") -> ProxiedBlob:
        """A checked upstream tarball: from the cache, or fetched, hashed and (maybe) kept."""
        self._guard(name, via)
        try:
            version = name.version_of_file(filename)
        except InvalidName:
            raise NotFound(f"tarball {filename!r} of {name} not found") from None
        caching = self.caching()
        if caching:
            hit = self._cached_blob(name, version)
            if hit is not None:
                self._count(Event.CACHE_HITS)
                return hit
        self._count(Event.CACHE_MISSES)
        dist = self._dist(name, version, via)
        if not caching:
            spooled = self._upstream(
                lambda: spool(
                    self.client,
                    dist,
                    self.blobs.spool_dir(),
                    max_bytes=self.max_tarball,
                    via=via,
                )
            )
            return ProxiedBlob(
                spooled.path,
                spooled.size,
                sri_from_hex(spooled.sha512),
                _blob_etag(spooled.sha512),
                "miss",
                temporary=True,
            )
        blob: ProxiedBlob
        blob, _ = self._flight.do(
            ("tgz", str(name), version), lambda: self._fetch_tarball(name, version, dist, via)
        )
        return blob

    def _cached_blob(self, name: PackageName, version: str) -> ProxiedBlob | None:
        row = self.storage.cached_tarball(str(name), version)
        if row is None:
            return None
        path = self.blobs.path(row.sha512)
        if path is None:  # removed behind our back (verify, a hand): fetch again
            return None
        return ProxiedBlob(path, row.size, sri_from_hex(row.sha512), _blob_etag(row.sha512), "hit")

    def _fetch_tarball(
        self, name: PackageName, version: str, dist: DistRecord, via: str
    ) -> ProxiedBlob:
        with across_workers(self.data_dir, f"tgz\0{name}\0{version}"):
            hit = self._cached_blob(name, version)
            if hit is not None:
                return hit
            spooled = self._upstream(
                lambda: spool(
                    self.client, dist, self.blobs.spool_dir(), max_bytes=self.max_tarball, via=via
                )
            )
            with self.blobs.hold():  # no sweep between the file and its row
                info = self.blobs.put_file(spooled.path, spooled.sha512)
                self.storage.save_tarball(
                    CachedTarball(str(name), version, info.sha512, info.size, self.clock())
                )
            path = self.blobs.path(info.sha512)
            if path is None:
                raise UpstreamError(f"the cached tarball of {name}@{version} vanished")
            return ProxiedBlob(
                path, info.size, sri_from_hex(info.sha512), _blob_etag(info.sha512), "miss"
            )

    def _dist(self, name: PackageName, version: str, via: str) -> DistRecord:
        """Where ``name@version``'s tarball is upstream (from the packument, fetched if need be)."""
        for attempt in (0, 1):
            found = self.storage.cached_dist(str(name), version) if self.caching() else None
            if found is None:
                with self._lock:
                    found = self._dists.get((str(name), version))
            if found is not None:
                return found
            if attempt == 0:
                self.packument(name, abbreviated=True, via=via)
        raise NotFound(f"version {version} of {name} not found upstream")

    def attestations(self, name: PackageName, version: str, *, via: str = "") -> dict[str, Any]:
        """The upstream's ``/-/npm/v1/attestations/<name>@<version>``, passed through
        (provenance of a proxied version); NotFound when it has none or PROXY_MODE is off."""
        if not self.enabled():
            raise NotFound(f"no attestations for {name}@{version}")
        self._guard(name, via)
        path = f"{self.client.base_path}/-/npm/v1/attestations/{name.url}@{version}"
        answer = self._upstream(lambda: self.client.get_document(path, via=via))
        if answer is None or answer.status != 200:
            raise NotFound(f"no attestations for {name}@{version}")
        try:
            doc = json.loads(answer.body)
        except ValueError:
            raise UpstreamError("the upstream sent malformed attestations") from None
        if not isinstance(doc, dict):
            raise UpstreamError("the upstream sent malformed attestations")
        return doc

    # -- before a publish ---------------------------------------------------------------

    def shadows_upstream(self, name: PackageName) -> bool:
        """Whether publishing ``name`` here (a new name) would shadow an upstream package.

        False while PROXY_MODE is off, for private scopes, names the access rules keep
        local, and names an admin allowed (:meth:`allow_publish`). Otherwise the
        upstream is asked; UpstreamError if it cannot say (the publish is refused
        rather than risk shadowing a public package unseen).
        """
        if not self.enabled():
            return False
        if self.policy.ruled_out(name) or self.policy.private_scope(name):
            return False
        if any(n == str(name) for n, _a, _t in self.storage.upstream_overrides()):
            return False
        path = self.client.package_path(str(name))
        try:
            answer = self._upstream(lambda: self.client.get_document(path, accept=INSTALL_ACCEPT))
        except UpstreamError as exc:
            raise UpstreamError(
                f"cannot check whether the upstream has {name} ({exc}); publish into a "
                "private scope, or ask an admin to allow the name (`r13 uplink allow`)"
            ) from None
        return answer is not None

    def allow_publish(self, name: PackageName, *, actor: Actor) -> bool:
        """Let ``name`` be published here although the upstream has it (admins; audited)."""
        added = self.storage.add_upstream_override(str(name), actor.name, self.clock())
        if self.audit is not None:
            self.audit.safe_record(actor.name, "uplink.allow", str(name), ip=actor.address)
        return added

    def disallow_publish(self, name: PackageName, *, actor: Actor) -> bool:
        """Withdraw :meth:`allow_publish` (audited); False if there was none."""
        removed = self.storage.remove_upstream_override(str(name))
        if self.audit is not None:
            self.audit.safe_record(actor.name, "uplink.disallow", str(name), ip=actor.address)
        return removed

    def reset_breaker(self, *, actor: Actor) -> None:
        """Close the circuit breaker now (an admin knows the upstream is back; audited)."""
        self.breaker.reset()
        if self.audit is not None:
            self.audit.safe_record(
                actor.name, "uplink.breaker.reset", self.settings.url, ip=actor.address
            )

    def overrides(self) -> list[dict[str, Any]]:
        """The names admins allowed to shadow the upstream."""
        return [
            {"name": n, "by": a, "created_ms": t} for n, a, t in self.storage.upstream_overrides()
        ]

    # -- status -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For the monitor and the admin API: flags, breaker, cache sizes."""
        counts = self.storage.cache_counts()
        return {
            "url": self.settings.url,
            "proxy_mode": self.enabled(),
            "cache_enabled": self.caching(),
            "breaker": self.breaker.state().as_dict(),
            "cache": {
                "packuments": counts.packuments,
                "packument_bytes": counts.packument_bytes,
                "tarballs": counts.tarballs,
                "tarball_bytes": counts.tarball_bytes,
                "oldest_ms": counts.oldest_ms,
            },
            "private_scopes": list(self.settings.private_scopes),
            "in_flight": self._flight.in_flight(),
        }

    def close(self) -> None:
        """Release the pool and the breaker's descriptor."""
        self.client.close()
        self.breaker.close()


def _blob_etag(sha512: str) -> str:
    return f'"{sha512[:40]}"'


def _served(cached: CachedPackument, how: str, warning: str | None = None) -> Proxied:
    return Proxied(cached.body, cached.gzip, cached.etag, how, warning, cached.kind == ABBREVIATED)


__all__ = ["STALE_WARNING", "Proxied", "ProxiedBlob", "Uplink", "UplinkStorage"]
