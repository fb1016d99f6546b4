"""The one wiring: every r13core object a process uses, built from :class:`Settings`.

``open_services(settings)`` is called by each front end — the WSGI entry
(app/wsgi.py, in each worker after fork), ``r13 serve`` before it starts
gunicorn, and every ``r13`` command on a data dir — so they all build the same
objects the same way, over ONE storage opened from ``settings.storage.url``
(never a second one on the same file) and one data dir.

Parts are built on first use (``functools.cached_property``): a command that
only lists users never maps the rate limiter's shared table. A test may put a
stand-in in place before first use (``services.registry = fake``; the web guard
asks ``authenticator`` and ``maintainers``, so those can be replaced alone).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from r13core.abuse import AbuseControl, Blocklist, SecurityCounters
from r13core.access import Policy
from r13core.audit import Actor, AuditLog
from r13core.broadcasts import AuditBroadcaster, SecurityEvents
from r13core.config import Config13, ConfigStore, Feature
from r13core.config_changes import ConfigChanges
from r13core.database import Storage, open_database
from r13core.datadir import make_private_dirs, secure_data_dir
from r13core.errors import InvalidValue
from r13core.events import EventLog
from r13core.hooks import Deliverer, Hooks, HookWorker
from r13core.hooks.worker import address_policy
from r13core.identity import Identity, expiry_days
from r13core.keys import KeyStore
from r13core.logins import Logins
from r13core.names import PackageName
from r13core.ratelimit import RateLimiter
from r13core.registry import Registry
from r13core.settings import Settings
from r13core.signatures import verify_upstream_version
from r13core.signing_keys import SigningKeys
from r13core.storage.blobs import BlobStore, FileBlobStore
from r13core.tarball import Limits
from r13core.uplink import Uplink
from r13core.upstream_keys import UpstreamKeys
from r13core.usage import Analytics
from r13core.users import UserStore

if TYPE_CHECKING:  # psycopg is the postgres extra: imported only by a node of a cluster
    from r13core.cluster.heartbeat import Heartbeat
    from r13core.cluster.listener import ClusterListener, NodeSignal
    from r13core.cluster.node import Cluster
    from r13core.cluster.ratelimit import ClusterRateLimiter
    from r13core.cluster.record import SharedRecord


LIMITER_TABLE = "security"
"""The name of the shared rate-limiter table every worker of a data dir maps."""
SIGNING_DIR = "signing"
"""Where the signing key ring and the upstream's keys live in the data dir."""


class Services:
    """What one process of r13 works with, over one storage and one data dir.

    ``notices`` lists what securing the data dir changed (an older install
    narrowed to 0700/0600), for the caller to show.
    """

    def __init__(self, settings: Settings, *, storage: Storage | None = None) -> None:
        self.settings = settings
        self.data_dir = settings.storage.data_dir
        # Checked before anything is opened in it (r13core/datadir.py).
        self.notices = secure_data_dir(self.data_dir)
        make_private_dirs(self.data_dir)
        self.storage: Storage = (
            storage
            if storage is not None
            else open_database(
                self.data_dir,
                settings.storage.url,
                auto_migrate=settings.storage.auto_migrate,
                pool_size=settings.storage.pool_size,
            )
        )

    # -- the live record ------------------------------------------------------------

    @cached_property
    def config(self) -> ConfigStore:
        """The 13-byte record of the data dir (created with the defaults if absent).

        On a node of a cluster it is brought to the database's record first (the first
        node seeds the database with its own): r13core/cluster/record.py.
        """
        store = ConfigStore(
            self.data_dir, defaults=Config13.defaults(self.settings.server.public_url)
        )
        if self.cluster is not None:
            self._shared_record(store).load()
        return store

    # -- the cluster (R13_DATABASE_URL=postgresql://..., docs/cluster.md) ------------------

    @cached_property
    def cluster(self) -> Cluster | None:
        """This node's place in a cluster; None with SQLite (one machine)."""
        if not self.settings.clustered:
            return None
        from r13core.cluster.node import Cluster

        return Cluster.of(self.settings, self.storage)

    def _shared_record(self, store: ConfigStore | None = None) -> SharedRecord:
        opened: dict[str, Any] = vars(self)
        if "_shared" not in opened:
            from r13core.cluster.record import SharedRecord

            assert self.cluster is not None
            opened["_shared"] = SharedRecord(
                self.cluster.db, store if store is not None else self.config, self.data_dir
            )
        shared: SharedRecord = opened["_shared"]
        return shared

    def storage_signals(self) -> Mapping[str, NodeSignal]:
        """The storage's change signals by name (a PostgreSQL storage's; {} otherwise)."""
        signals = getattr(self.storage, "signals", None)
        return {} if signals is None else dict(signals())

    def cluster_listener(self) -> ClusterListener:
        """The node's listener (a leader job: one worker of the node listens); a node only."""
        from r13core.cluster.events import ClusterEventLog
        from r13core.cluster.listener import ClusterListener

        cluster = self.cluster
        events = self.events
        assert cluster is not None and isinstance(events, ClusterEventLog)
        return ClusterListener(
            cluster.db,
            self.data_dir,
            cluster.node_id,
            events=events,
            record=self._shared_record(),
            signals=self.storage_signals,
        )

    def heartbeat(self) -> Heartbeat:
        """The node's heartbeat row writer (its sampler's leader beats); a node only."""
        from r13core.cluster.heartbeat import Heartbeat

        assert self.cluster is not None
        return Heartbeat(self.cluster.db, self.cluster.node_id, self.cluster.node_url)

    def cluster_view(self) -> dict[str, Any]:
        """``GET /_api/cluster``: every node, its last heartbeat, alive or stale; totals.
        On one machine (SQLite): ``{"clustered": false, ...}`` with this node alone."""
        cluster = self.cluster
        if cluster is None:
            return {"clustered": False, "node": None, "nodes": [], "total": None}
        from r13core.cluster.heartbeat import cluster_view

        return cluster_view(cluster.db, cluster.node_id, cluster.stale_after_ms)

    def apply_feature_overrides(self) -> Config13:
        """Force the R13_FEATURE_* bits on the record (the server does it at start).

        Each bit that changes is an audited change by r13 itself
        (``config.change``); a bit already as asked changes nothing.
        """
        current = self.config.read()
        for flag, on in self.settings.features:
            if current.has(flag) != on:
                current = self.config_changes.set_feature(Actor.system(), flag, on)
        return current

    @cached_property
    def config_changes(self) -> ConfigChanges:
        """Audited changes of the record (the CLI, the terminal, the live channel)."""
        store = self.config
        shared = self._shared_record(store) if self.cluster is not None else None
        changes = ConfigChanges(store, self.audit, shared=shared)
        changes.on_applied(self.events.nudge)  # every worker's live channel wakes at once
        return changes

    # -- packages -----------------------------------------------------------------------

    @cached_property
    def blobs(self) -> BlobStore:
        """Tarball bytes, local and cached from the upstream, content-addressed.

        R13_BLOB_STORE (r13core/settings.py): ``files`` under ``<data>/blobs`` or
        R13_BLOB_DIR (a directory every node mounts), or ``database``: chunked rows in
        the PostgreSQL database with a node-local cache (r13core/storage/postgres/blobs.py).
        """
        where = self.settings.storage.blob_path
        if self.settings.storage.blobs == "database":
            from r13core.storage.postgres import PgDatabase
            from r13core.storage.postgres.blobs import PgBlobStore

            if not isinstance(self.storage, PgDatabase):
                raise InvalidValue("R13_BLOB_STORE=database needs a PostgreSQL storage")
            return PgBlobStore(self.storage, where)
        return FileBlobStore(where)

    @cached_property
    def registry(self) -> Registry:
        """npm's package semantics over the storage and the blob files, with the uplink."""
        return Registry(
            self.storage,
            self.blobs,
            public_url=self.settings.server.public_url,
            config=self.config.read,
            limits=Limits(max_tarball=self.settings.server.max_body),
            audit=self.audit,
            uplink=self.uplink,
            signer=self.signing_keys,
        )

    @cached_property
    def uplink(self) -> Uplink:
        """The upstream registry (R13_UPLINK_URL): used while PROXY_MODE is on."""
        return Uplink(
            self.settings.uplink,
            self.storage,
            self.blobs,
            data_dir=self.data_dir,
            public_url=self.settings.server.public_url,
            config=self.config.read,
            policy=self.policy,
            via=f"r13-{self.config.read().registry_hash:08x}",
            max_tarball=self.settings.server.max_body,
            audit=self.audit,
            check_version=self._check_upstream_version,
        )

    def _check_upstream_version(
        self, name: PackageName, version_doc: dict[str, Any], published: str | None
    ) -> None:
        """The uplink's signature rule (r13core/signatures.py): against the upstream's keys."""
        version = version_doc.get("version")
        verify_upstream_version(
            version_doc,
            self.upstream_keys.current(),
            published=published,
            expected_name=str(name),
            expected_version=version if isinstance(version, str) else "",
        )

    @cached_property
    def signing_keys(self) -> SigningKeys:
        """r13's signing key ring, ``<data>/signing/`` (r13core/signing_keys.py)."""
        return SigningKeys(self.data_dir / SIGNING_DIR, self.audit)

    @cached_property
    def upstream_keys(self) -> UpstreamKeys:
        """The uplink's public signing keys, fetched and cached (r13core/upstream_keys.py)."""
        return UpstreamKeys(self.settings.uplink.url, self.data_dir / SIGNING_DIR)

    def registry_keys(self) -> dict[str, Any]:
        """``GET /-/npm/v1/keys``: r13's keys (rotated ones too), then the upstream's
        when PROXY_MODE is on (proxied versions keep the upstream's signatures)."""
        keys = [key.as_json() for key in self.signing_keys.public_keys()]
        if self.config.read().has(Feature.PROXY_MODE):
            seen = {key["keyid"] for key in keys}
            keys += [k.as_json() for k in self.upstream_keys.current() if k.keyid not in seen]
        return {"keys": keys}

    @cached_property
    def maintainers(self) -> Callable[[PackageName], list[dict[str, Any]]]:
        """A package's maintainers, for the web guard's early ownership check (the
        registry's; the answer that counts is taken again at commit)."""
        return self.registry.owners

    # -- webhooks (docs/webhooks.md) ---------------------------------------------------

    @cached_property
    def hooks(self) -> Hooks:
        """Managing webhooks (audited); a ping wakes this process's delivery worker."""
        return Hooks(
            self.storage,
            self.audit,
            address_policy(self.settings.hooks),
            on_queued=self.hook_worker.wake,
        )

    @cached_property
    def hook_worker(self) -> HookWorker:
        """The delivery worker: started by each server worker, run by the one that leads."""
        return HookWorker(Deliverer(self.storage, self.settings.hooks), self.data_dir)

    @cached_property
    def analytics(self) -> Analytics:
        """Downloads and publishes per package and day."""
        return Analytics(self.storage)

    # -- identity, abuse control, the audit log ------------------------------------------

    @cached_property
    def audit(self) -> AuditLog:
        """The append-only, hash-chained audit log; each audited change is also
        broadcast on the live channel (r13core/broadcasts.py)."""
        return AuditLog(self.storage, on_record=AuditBroadcaster(self.events))

    # -- the live channel's events ------------------------------------------------------

    @cached_property
    def events(self) -> EventLog:
        """The events log every worker's live channel tails (r13core/events.py); on a
        node of a cluster, also published to and fed by the other nodes
        (r13core/cluster/events.py)."""
        if self.cluster is not None:
            from r13core.cluster.events import ClusterEventLog

            return ClusterEventLog(self.data_dir, self.cluster.db, self.cluster.node_id)
        return EventLog(self.data_dir)

    @cached_property
    def security_events(self) -> SecurityEvents:
        """Refused requests (bad keys, rate limits) as live events, throttled per client."""
        return SecurityEvents(self.events)

    @cached_property
    def keys(self) -> KeyStore:
        """API keys and npm tokens."""
        return KeyStore(self.storage)

    @cached_property
    def authenticator(self) -> KeyStore:
        """What turns a request's secret into a key (the key store, with its cache)."""
        return self.keys

    @cached_property
    def users(self) -> UserStore:
        """Users, roles and password hashes."""
        return UserStore(self.storage)

    @cached_property
    def identity(self) -> Identity:
        """The audited operations on keys, tokens and users."""
        return Identity(
            self.keys,
            self.users,
            self.audit,
            token_days=expiry_days(self.settings.security.api_key_expiry_ms),
        )

    @cached_property
    def logins(self) -> Logins:
        """npm's login flows (legacy, web) and signup."""
        security = self.settings.security
        return Logins(
            self.identity,
            self.storage,
            open_signup=security.open_signup,
            signup_role=security.signup_role,
        )

    @cached_property
    def policy(self) -> Policy:
        """The one decision point, with R13_ACCESS_RULES."""
        return Policy(self.settings.security.rules)

    @cached_property
    def blocks(self) -> Blocklist:
        """IP blocks, shared by every worker and kept across restarts."""
        return Blocklist(self.storage, ipv6_prefix=self.settings.security.ipv6_prefix)

    @cached_property
    def counters(self) -> SecurityCounters:
        """The security metrics' counters."""
        return SecurityCounters(self.storage)

    @cached_property
    def limiter(self) -> RateLimiter | ClusterRateLimiter:
        """The rate limiter's table in shared memory (mapped on first use); with
        R13_RATE_LIMIT_SCOPE=cluster on a node, the cluster's (r13core/cluster/ratelimit.py)."""
        slots = self.settings.security.limiter_slots
        if self.cluster is not None and self.settings.cluster.rate_limit_scope == "cluster":
            from r13core.cluster.ratelimit import ClusterRateLimiter

            return ClusterRateLimiter(self.cluster.db, slots)
        return RateLimiter(self.data_dir, LIMITER_TABLE, slots)

    @cached_property
    def abuse(self) -> AbuseControl:
        """Audited block and unblock (forgetting the client's strikes in the limiter)."""
        return AbuseControl(self.blocks, self.audit, self.limiter)

    # -- life ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release what this process opened: the record's mapping, the limiter, connections."""
        opened: dict[str, Any] = vars(self)
        uplink = opened.get("uplink")
        if uplink is not None:
            uplink.close()
        for name in ("limiter", "config"):
            part = opened.get(name)
            if part is not None:
                part.close()
        cluster = opened.get("cluster")
        if cluster is not None:
            cluster.db.close()
        self.storage.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_services(settings: Settings, *, storage: Storage | None = None) -> Services:
    """The services of ``settings`` (cheap: storage connects lazily, per process and thread).

    Call it after fork in each worker. ``storage`` replaces the one the
    settings name (a test's, or a backend made elsewhere).
    """
    return Services(settings, storage=storage)


__all__ = ["LIMITER_TABLE", "Services", "open_services"]


def schema_status(settings: Settings) -> tuple[int, int]:
    """(the metadata database's schema version, the version this r13 knows), migrating nothing."""
    storage = _unmigrated(settings)
    try:
        return storage.schema_version()
    finally:
        storage.close()


def migrate_database(settings: Settings) -> tuple[list[int], int]:
    """Apply the pending schema migrations; (the versions applied, the version now).

    PostgreSQL migrates under an advisory lock (several nodes starting at once
    migrate once); SchemaTooNew when the database is newer than this r13.
    """
    storage = _unmigrated(settings)
    try:
        applied = storage.migrate()
        return applied, storage.schema_version()[0]
    finally:
        storage.close()


def _unmigrated(settings: Settings) -> Storage:
    make_private_dirs(settings.storage.data_dir)
    return open_database(
        settings.storage.data_dir, settings.storage.url, auto_migrate=False, pool_size=2
    )
