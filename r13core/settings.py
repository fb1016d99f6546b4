"""Settings: read once from the environment into one frozen object with sections.

:meth:`Settings.from_env` is the one place r13 reads its environment
(tests/test_layout.py holds every other module to that). The unprefixed names
come first (REGISTRY_PORT, SECURITY_*, METRICS_*, ALERT_*), then ``R13_*`` for
the rest; README.md lists every one. A bad value stops start-up with a message
that names the variable. The sections:

* :class:`ServerSettings` — where and how the server listens, its public URL;
* :class:`StorageSettings` — the data dir and the metadata database's URL;
* :class:`SecuritySettings` — keys, rate limits, blocks, proxies, access rules;
* :class:`MonitorSettings` — the sampler and its alert rules;
* :class:`HousekeepingSettings` — the orphan sweep and the usage counts' flush;
* :class:`LiveSettings` — the live channel's WebSocket limits and timers;
* :class:`UplinkSettings` — the upstream registry, its cache and its circuit breaker;
* :class:`ClusterSettings` — this node's name and URL among several over PostgreSQL;
* :class:`BackupSettings` — automatic backups: how often, how many kept, where;
* ``features`` — ``R13_FEATURE_<NAME>=0|1`` bits forced on the 13-byte record.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from r13core.access import Rule, load_rules
from r13core.config import Feature
from r13core.database import default_url
from r13core.errors import InvalidValue
from r13core.keys import IPNetwork, parse_cidrs
from r13core.storage import parse_url
from r13core.users import Role

WORKER_CLASSES: Final = ("gevent", "gthread")
"""The gunicorn workers r13 runs on (R13_WORKER_CLASS); docs/architecture.md says why gevent."""


class SettingsError(InvalidValue):
    """An environment variable has a value r13 cannot use."""


class SecuritySettingsError(SettingsError):
    """A security variable (identity, abuse control) has a value r13 cannot use."""


def _int(
    env: Mapping[str, str],
    name: str,
    default: int,
    lo: int,
    hi: int,
    error: type[SettingsError] = SettingsError,
) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        raise error(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise error(f"{name}={value} is out of range {lo}..{hi}")
    return value


def _bool(
    env: Mapping[str, str], name: str, error: type[SettingsError] = SettingsError
) -> bool | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise error(f"{name}={raw!r} must be 0 or 1")


def _number(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if math.isnan(value) or not lo <= value <= hi:
        raise SettingsError(f"{name}={raw} is out of range {lo:g}..{hi:g}")
    return value


def database_url(env: Mapping[str, str]) -> str | None:
    """R13_DATABASE_URL, checked (r13core/storage/backends.py); None when unset or blank."""
    raw = env.get("R13_DATABASE_URL", "").strip()
    if not raw:
        return None
    try:
        parse_url(raw)
    except InvalidValue as exc:  # the message never repeats the URL: it may hold a password
        raise SettingsError(f"R13_DATABASE_URL: {exc}") from None
    return raw


@dataclass(frozen=True)
class ServerSettings:
    """Where the server listens, how many workers, what it calls itself, how big a body."""

    host: str = "localhost"
    port: int = 4873
    workers: int = 2
    threads: int = 8
    public_url: str = "http://localhost:4873"
    allowed_hosts: tuple[str, ...] = ()
    max_body: int = 100 * 1024 * 1024
    worker_class: str = "gevent"
    """gunicorn's worker: ``gevent`` (greenlets, the default) or ``gthread`` (a thread pool)."""
    worker_connections: int = 1000
    """Connections one gevent worker serves at once; more wait in the listen queue."""
    header_timeout_ms: int = 10_000
    """How long a request line and its headers may take to arrive (gevent worker)."""
    body_timeout_ms: int = 120_000
    """How long a whole request body may take to arrive."""
    accel_redirect: str = ""
    """R13_ACCEL_REDIRECT: the internal location of a front nginx over the blob dir
    (``/_blobs/``); tarballs are then answered with ``X-Accel-Redirect`` and nginx sends
    the bytes. Empty: r13 sends them itself."""
    hot_reads: bool = True
    """R13_HOT_READS: packument GETs in the common case skip falcon's request machinery
    (app/hot_reads.py; the same decisions, fewer objects). Off: every request goes
    through falcon."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerSettings:
        """REGISTRY_HOST, REGISTRY_PORT, R13_WORKERS, R13_THREADS, R13_PUBLIC_URL, ..."""
        worker_class = env.get("R13_WORKER_CLASS", "").strip().lower() or "gevent"
        if worker_class not in WORKER_CLASSES:
            raise SettingsError(
                f"R13_WORKER_CLASS={worker_class!r} must be one of {', '.join(WORKER_CLASSES)}"
            )
        host = env.get("REGISTRY_HOST", "localhost").strip() or "localhost"
        port = _int(env, "REGISTRY_PORT", 4873, 1, 65535)
        public_url = env.get("R13_PUBLIC_URL", "").strip().rstrip("/")
        if not public_url:
            public_url = f"http://{host}:{port}"
        if not public_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"R13_PUBLIC_URL={public_url!r} must start with http:// or https://"
            )
        allowed = tuple(
            h.strip().lower() for h in env.get("R13_ALLOWED_HOSTS", "").split(",") if h.strip()
        )
        return cls(
            host=host,
            port=port,
            workers=_int(env, "R13_WORKERS", 2, 1, 64),
            threads=_int(env, "R13_THREADS", 8, 1, 256),
            public_url=public_url,
            allowed_hosts=allowed,
            max_body=_int(env, "R13_MAX_BODY", 100 * 1024 * 1024, 1024, 2**40),
            worker_class=worker_class,
            worker_connections=_int(env, "R13_WORKER_CONNECTIONS", 1000, 1, 100_000),
            header_timeout_ms=_int(env, "R13_HEADER_TIMEOUT", 10_000, 1000, 3_600_000),
            body_timeout_ms=_int(env, "R13_BODY_TIMEOUT", 120_000, 1000, 86_400_000),
            accel_redirect=accel_location(env.get("R13_ACCEL_REDIRECT", "")),
            hot_reads=_bool(env, "R13_HOT_READS") is not False,
        )


BLOB_STORES: Final = ("database", "files")
_LOCATION_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-."
)


def accel_location(raw: str) -> str:
    """R13_ACCEL_REDIRECT: empty (off) or a location path ``/_name/``.

    It starts with ``/_`` (no package name does, so the internal location never hides a
    package) and must not be one of r13's own ``/_api/`` or ``/_dashboard/`` routes."""
    value = raw.strip()
    if not value:
        return ""
    if (
        not value.startswith("/_")
        or not value.endswith("/")
        or value.startswith(("/_api/", "/_dashboard/", "/_api", "/_dashboard"))
        or len(value) < 3
        or len(value) > 64
        or not set(value) <= _LOCATION_CHARS
        or ".." in value
        or "//" in value
    ):
        raise SettingsError(
            f"R13_ACCEL_REDIRECT={raw!r} must be a location path like /_blobs/ "
            "(letters, digits, / _ - .; starting with /_, ending with /; not /_api or /_dashboard)"
        )
    return value


@dataclass(frozen=True)
class StorageSettings:
    """The data dir (record, blobs, logs, run state) and where metadata and tarballs live."""

    data_dir: Path = Path("var")
    database_url: str | None = None
    """R13_DATABASE_URL; None: the data dir's SQLite file (:attr:`url`)."""
    blob_store: str | None = None
    """R13_BLOB_STORE: ``database`` or ``files``; None: database with PostgreSQL, else files."""
    blob_dir: Path | None = None
    """R13_BLOB_DIR: where the files store keeps tarballs (a shared directory for several
    nodes); None: ``<data dir>/blobs``. With the database store: this node's cache of them."""
    auto_migrate: bool = True
    """R13_AUTO_MIGRATE: ``r13 serve`` applies pending schema migrations at start (1), or
    refuses to start while one is pending (0: run ``r13 db migrate``)."""
    pool_size: int = 10
    """R13_DB_POOL_SIZE: PostgreSQL connections per process, at most."""

    @property
    def url(self) -> str:
        """The metadata database's URL: R13_DATABASE_URL, else ``sqlite:///<data>/registry.sqlite3``."""
        return self.database_url if self.database_url is not None else default_url(self.data_dir)

    @property
    def is_postgres(self) -> bool:
        """Whether metadata lives in PostgreSQL."""
        return self.url.partition(":")[0].lower() in ("postgresql", "postgres")

    @property
    def blobs(self) -> str:
        """The blob store in use: ``database`` or ``files`` (R13_BLOB_STORE, else by backend)."""
        if self.blob_store is not None:
            return self.blob_store
        return "database" if self.is_postgres else "files"

    @property
    def blob_path(self) -> Path:
        """The files store's root, or the database store's node-local cache."""
        if self.blob_dir is not None:
            return self.blob_dir
        return self.data_dir / ("blob-cache" if self.blobs == "database" else "blobs")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StorageSettings:
        """R13_DATA, R13_DATABASE_URL, R13_BLOB_STORE, R13_BLOB_DIR, R13_AUTO_MIGRATE,
        R13_DB_POOL_SIZE."""
        url = database_url(env)
        store = env.get("R13_BLOB_STORE", "").strip().lower() or None
        if store is not None and store not in BLOB_STORES:
            raise SettingsError(f"R13_BLOB_STORE={store!r} must be database or files")
        blob_dir = env.get("R13_BLOB_DIR", "").strip()
        settings = cls(
            data_dir=Path(env.get("R13_DATA", "var").strip() or "var"),
            database_url=url,
            blob_store=store,
            blob_dir=Path(blob_dir) if blob_dir else None,
            auto_migrate=_bool(env, "R13_AUTO_MIGRATE") is not False,
            pool_size=_int(env, "R13_DB_POOL_SIZE", 10, 1, 1000),
        )
        if settings.blob_store == "database" and not settings.is_postgres:
            raise SettingsError(
                "R13_BLOB_STORE=database needs a PostgreSQL R13_DATABASE_URL "
                "(with SQLite, tarballs are files)"
            )
        return settings


@dataclass(frozen=True)
class MonitorSettings:
    """The sampler and its alert rules (METRICS_*, ALERT_*, R13_ALERT_*)."""

    interval_ms: int = 1000
    history: int = 60
    cpu_percent: float = 80
    memory_percent: float = 85
    latency_ms: float = 1000
    alert_samples: int = 3
    error_rate_percent: float = 5
    error_min_requests: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MonitorSettings:
        """METRICS_COLLECTION_INTERVAL, METRICS_HISTORY_SIZE, ALERT_*, R13_ALERT_*."""
        return cls(
            interval_ms=_int(env, "METRICS_COLLECTION_INTERVAL", 1000, 50, 3_600_000),
            history=_int(env, "METRICS_HISTORY_SIZE", 60, 1, 100_000),
            cpu_percent=_int(env, "ALERT_CPU_THRESHOLD", 80, 1, 100),
            memory_percent=_int(env, "ALERT_MEMORY_THRESHOLD", 85, 1, 100),
            latency_ms=_int(env, "ALERT_LATENCY_THRESHOLD", 1000, 1, 3_600_000),
            alert_samples=int(_number(env, "R13_ALERT_SAMPLES", 3, 1, 1000)),
            error_rate_percent=_number(env, "R13_ALERT_ERROR_RATE", 5, 0, 100),
            error_min_requests=int(_number(env, "R13_ALERT_ERROR_MIN_REQUESTS", 10, 1, 1e9)),
        )


@dataclass(frozen=True)
class HousekeepingSettings:
    """The periodic orphan sweep, and how often each worker writes its usage counts."""

    sweep_interval_ms: int = 3_600_000
    sweep_min_age_ms: int = 3_600_000
    usage_flush_interval_ms: int = 5000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HousekeepingSettings:
        """R13_SWEEP_INTERVAL, R13_SWEEP_MIN_AGE, R13_USAGE_FLUSH_INTERVAL."""
        return cls(
            sweep_interval_ms=_int(env, "R13_SWEEP_INTERVAL", 3_600_000, 100, 2**40),
            sweep_min_age_ms=_int(env, "R13_SWEEP_MIN_AGE", 3_600_000, 0, 2**40),
            usage_flush_interval_ms=_int(env, "R13_USAGE_FLUSH_INTERVAL", 5000, 10, 86_400_000),
        )


_UNITS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _interval_ms(env: Mapping[str, str], name: str, lo: int, hi: int) -> int:
    """A duration: whole milliseconds (``3600000``) or a number with a unit (``6h``, ``30m``,
    ``90s``, ``1d``, ``500ms``); 0 or unset: 0."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return 0
    number, unit = raw, "ms"
    for suffix in sorted(_UNITS, key=len, reverse=True):
        if raw.endswith(suffix) and raw[: -len(suffix)].strip():
            number, unit = raw[: -len(suffix)].strip(), suffix
            break
    try:
        value = float(number)
    except ValueError:
        raise SettingsError(
            f"{name}={raw!r} is not a duration (e.g. 6h, 30m, 1d, or milliseconds)"
        ) from None
    ms = int(value * _UNITS[unit])
    if ms == 0:
        return 0
    if math.isnan(value) or not lo <= ms <= hi:
        raise SettingsError(f"{name}={raw!r} is out of range {lo} ms..{hi} ms")
    return ms


@dataclass(frozen=True)
class BackupSettings:
    """Automatic backups (docs/backup.md): how often, how many kept, where."""

    every_ms: int = 0
    """R13_BACKUP_EVERY: the interval between automatic backups; 0: none."""
    keep: int = 7
    """R13_BACKUP_KEEP: how many automatic backups are kept (the oldest go)."""
    directory: Path | None = None
    """R13_BACKUP_DIR: where they go; None: ``<data dir>/backups``."""
    link: bool = False
    """R13_BACKUP_LINK: hard-link tarballs into each backup instead of copying them."""

    def directory_for(self, data_dir: Path) -> Path:
        """Where automatic backups go for ``data_dir``."""
        return self.directory if self.directory is not None else Path(data_dir) / "backups"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BackupSettings:
        """R13_BACKUP_EVERY, R13_BACKUP_KEEP, R13_BACKUP_DIR, R13_BACKUP_LINK."""
        directory = env.get("R13_BACKUP_DIR", "").strip()
        return cls(
            every_ms=_interval_ms(env, "R13_BACKUP_EVERY", 1000, 366 * 86_400_000),
            keep=_int(env, "R13_BACKUP_KEEP", 7, 1, 100_000),
            directory=Path(directory) if directory else None,
            link=bool(_bool(env, "R13_BACKUP_LINK")),
        )


DEFAULT_UPLINK_URL: Final = "https://registry.npmjs.org"


def _scopes(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    out = []
    for raw in env.get(name, "").replace(" ", ",").split(","):
        scope = raw.strip().lower()
        if not scope:
            continue
        if not scope.startswith("@"):
            scope = "@" + scope
        body = scope[1:]
        if not body or not all(c.isalnum() or c in "-._~" for c in body) or body[0] in "._":
            raise SettingsError(f"{name}: {raw.strip()!r} is not an npm scope (@name)")
        out.append(scope)
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class UplinkSettings:
    """The upstream registry (PROXY_MODE), its cache (CACHE_ENABLED) and breaker (R13_UPLINK_*).

    docs/uplinks.md explains each; the flags themselves live on the 13-byte record.
    """

    url: str = DEFAULT_UPLINK_URL
    token: str | None = None
    name: str = "npmjs"
    """What ``proxy`` in R13_ACCESS_RULES calls this uplink."""
    private_scopes: tuple[str, ...] = ()
    """Scopes never asked of the upstream, besides every scope with a local package."""
    max_age_ms: int = 120_000
    """How long a cached packument is served before it is revalidated (ETag)."""
    connect_timeout_ms: int = 3_000
    timeout_ms: int = 15_000
    """The longest wait for any one read from the upstream (headers or a chunk of body)."""
    max_fails: int = 3
    """Failures in a row that open the circuit breaker."""
    fail_timeout_ms: int = 30_000
    """How long an open breaker refuses before it lets one probe through."""
    search: bool = True
    """Whether /-/v1/search adds the upstream's results (marked) while PROXY_MODE is on."""
    pool_size: int = 8
    """Idle keep-alive connections kept to the upstream, per worker."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> UplinkSettings:
        """R13_UPLINK_URL, R13_UPLINK_TOKEN, R13_PRIVATE_SCOPES, R13_UPLINK_* (README.md)."""
        url = env.get("R13_UPLINK_URL", "").strip().rstrip("/") or DEFAULT_UPLINK_URL
        if not url.startswith(("http://", "https://")) or len(url.split("/", 3)[2]) == 0:
            raise SettingsError(f"R13_UPLINK_URL={url!r} must be an http:// or https:// URL")
        name = env.get("R13_UPLINK_NAME", "").strip() or "npmjs"
        if not all(c.isalnum() or c in "-_." for c in name):
            raise SettingsError(f"R13_UPLINK_NAME={name!r}: letters, digits, - _ . only")
        search = _bool(env, "R13_UPLINK_SEARCH")
        return cls(
            url=url,
            token=env.get("R13_UPLINK_TOKEN", "").strip() or None,
            name=name,
            private_scopes=_scopes(env, "R13_PRIVATE_SCOPES"),
            max_age_ms=_int(env, "R13_UPLINK_MAXAGE", 120_000, 0, 2**40),
            connect_timeout_ms=_int(env, "R13_UPLINK_CONNECT_TIMEOUT", 3_000, 10, 600_000),
            timeout_ms=_int(env, "R13_UPLINK_TIMEOUT", 15_000, 10, 3_600_000),
            max_fails=_int(env, "R13_UPLINK_MAX_FAILS", 3, 1, 1_000_000),
            fail_timeout_ms=_int(env, "R13_UPLINK_FAIL_TIMEOUT", 30_000, 10, 86_400_000),
            search=True if search is None else search,
            pool_size=_int(env, "R13_UPLINK_POOL", 8, 0, 1024),
        )


@dataclass(frozen=True)
class LiveSettings:
    """The live channel's WebSockets (docs/live.md): limits and timers, per worker."""

    max_message: int = 65536
    ping_interval_ms: int = 20_000
    idle_timeout_ms: int = 60_000
    heartbeat_interval_ms: int = 5000
    max_connections: int = 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LiveSettings:
        """R13_LIVE_MAX_MESSAGE, R13_LIVE_PING_INTERVAL, R13_LIVE_IDLE_TIMEOUT,
        R13_LIVE_HEARTBEAT_INTERVAL, R13_LIVE_MAX_CONNECTIONS."""
        ping = _int(env, "R13_LIVE_PING_INTERVAL", 20_000, 100, 3_600_000)
        idle = _int(env, "R13_LIVE_IDLE_TIMEOUT", 60_000, 200, 86_400_000)
        if idle <= ping:
            raise SettingsError(
                f"R13_LIVE_IDLE_TIMEOUT={idle} must be longer than R13_LIVE_PING_INTERVAL={ping}"
            )
        return cls(
            max_message=_int(env, "R13_LIVE_MAX_MESSAGE", 65536, 16, 16 << 20),
            ping_interval_ms=ping,
            idle_timeout_ms=idle,
            heartbeat_interval_ms=_int(env, "R13_LIVE_HEARTBEAT_INTERVAL", 5000, 50, 3_600_000),
            max_connections=_int(env, "R13_LIVE_MAX_CONNECTIONS", 1000, 1, 100_000),
        )


@dataclass(frozen=True)
class HookSettings:
    """Webhooks' delivery (docs/webhooks.md): timeouts, retries, which addresses (R13_HOOKS_*)."""

    allow_private: bool = False
    """R13_HOOKS_ALLOW_PRIVATE=1: endpoints on private/loopback/link-local addresses too."""
    allow_cidrs: tuple[str, ...] = ()
    """R13_HOOKS_ALLOW_CIDRS: networks allowed although not public (e.g. 10.1.0.0/16)."""
    timeout_ms: int = 10_000
    max_attempts: int = 10
    retry_base_ms: int = 1000
    retry_max_ms: int = 3_600_000
    poll_ms: int = 1000
    concurrency: int = 8
    keep_days: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HookSettings:
        """R13_HOOKS_ALLOW_PRIVATE, R13_HOOKS_ALLOW_CIDRS, R13_HOOKS_TIMEOUT,
        R13_HOOKS_MAX_ATTEMPTS, R13_HOOKS_RETRY_BASE, R13_HOOKS_RETRY_MAX, R13_HOOKS_POLL,
        R13_HOOKS_CONCURRENCY, R13_HOOKS_KEEP_DAYS."""
        cidrs = tuple(
            c.strip() for c in env.get("R13_HOOKS_ALLOW_CIDRS", "").split(",") if c.strip()
        )
        for cidr in cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise SettingsError(f"R13_HOOKS_ALLOW_CIDRS: {cidr!r} is not a network") from None
        base = _int(env, "R13_HOOKS_RETRY_BASE", 1000, 1, 86_400_000)
        return cls(
            allow_private=bool(_bool(env, "R13_HOOKS_ALLOW_PRIVATE")),
            allow_cidrs=cidrs,
            timeout_ms=_int(env, "R13_HOOKS_TIMEOUT", 10_000, 100, 600_000),
            max_attempts=_int(env, "R13_HOOKS_MAX_ATTEMPTS", 10, 1, 100),
            retry_base_ms=base,
            retry_max_ms=max(base, _int(env, "R13_HOOKS_RETRY_MAX", 3_600_000, 1, 7 * 86_400_000)),
            poll_ms=_int(env, "R13_HOOKS_POLL", 1000, 10, 600_000),
            concurrency=_int(env, "R13_HOOKS_CONCURRENCY", 8, 1, 256),
            keep_days=_int(env, "R13_HOOKS_KEEP_DAYS", 30, 1, 3650),
        )


@dataclass(frozen=True)
class SecuritySettings:
    """Keys, rate limits, blocks, proxies and access rules (SECURITY_*, R13_*)."""

    rate_limit_window_ms: int = 900_000
    rate_limit_max: int = 1000
    api_key_expiry_ms: int = 86_400_000
    """The longest life of a key made through the API or by npm (0: no expiry)."""
    trusted_proxies: tuple[IPNetwork, ...] = ()
    open_signup: bool = False
    signup_role: Role = Role.READER
    auth_rate_limit_max: int | None = None
    """Requests per window on login and token routes (None: a tenth of the default)."""
    block_auth_failures: int = 10
    block_limit_violations: int = 100
    block_anomalies: int = 20
    block_window_ms: int = 600_000
    block_duration_ms: int = 3_600_000
    limiter_slots: int = 65536
    ipv6_prefix: int = 64
    """IPv6 clients are counted by this prefix for limits, strikes and blocks."""
    rules: tuple[Rule, ...] = field(default=())

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SecuritySettings:
        """Parse ``env``; SecuritySettingsError names a bad variable."""
        bad = SecuritySettingsError
        try:
            proxies = parse_cidrs(
                p for p in env.get("R13_TRUSTED_PROXIES", "").split(",") if p.strip()
            )
        except InvalidValue as exc:
            raise bad(f"R13_TRUSTED_PROXIES: {exc}") from None
        signup = _bool(env, "R13_OPEN_SIGNUP", bad)
        try:
            role = Role.parse(env.get("R13_SIGNUP_ROLE", "reader") or "reader")
        except InvalidValue as exc:
            raise bad(f"R13_SIGNUP_ROLE: {exc}") from None
        auth_max = _int(env, "R13_AUTH_RATE_LIMIT_MAX", 0, 0, 2**31, bad)
        slots = _int(env, "R13_RATE_LIMIT_SLOTS", 65536, 64, 1 << 24, bad)
        if slots & (slots - 1):
            raise bad(f"R13_RATE_LIMIT_SLOTS={slots} is not a power of two")
        rules_path = env.get("R13_ACCESS_RULES", "").strip()
        try:
            rules = load_rules(rules_path) if rules_path else ()
        except InvalidValue as exc:
            raise bad(f"R13_ACCESS_RULES: {exc}") from None
        return cls(
            rate_limit_window_ms=_int(env, "SECURITY_RATE_LIMIT_WINDOW", 900_000, 1, 2**40, bad),
            rate_limit_max=_int(env, "SECURITY_RATE_LIMIT_MAX", 1000, 1, 2**31, bad),
            api_key_expiry_ms=_int(env, "SECURITY_API_KEY_EXPIRY", 86_400_000, 0, 2**50, bad),
            trusted_proxies=proxies,
            open_signup=bool(signup),
            signup_role=role,
            auth_rate_limit_max=auth_max or None,
            block_auth_failures=_int(env, "R13_BLOCK_AUTH_FAILURES", 10, 0, 2**31, bad),
            block_limit_violations=_int(env, "R13_BLOCK_LIMIT_VIOLATIONS", 100, 0, 2**31, bad),
            block_anomalies=_int(env, "R13_BLOCK_ANOMALIES", 20, 0, 2**31, bad),
            block_window_ms=_int(env, "R13_BLOCK_WINDOW", 600_000, 1000, 2**32, bad),
            block_duration_ms=_int(env, "R13_BLOCK_DURATION", 3_600_000, 1000, 2**40, bad),
            limiter_slots=slots,
            ipv6_prefix=_int(env, "R13_IPV6_PREFIX", 64, 32, 128, bad),
            rules=rules,
        )


RATE_LIMIT_SCOPES: Final = ("node", "cluster")
"""R13_RATE_LIMIT_SCOPE: limits counted by each node (like nginx's limit_req) or by all."""
_NODE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True)
class ClusterSettings:
    """This node among several over one PostgreSQL (docs/cluster.md).

    Cluster mode is on exactly when R13_DATABASE_URL is ``postgresql://``
    (:attr:`Settings.clustered`); with SQLite these settings change nothing.
    """

    node_id: str | None = None
    """R13_NODE_ID; None: the id kept in ``<data>/node-id`` (made once: host name + suffix)."""
    node_url: str | None = None
    """R13_NODE_URL: the URL this node advertises to the others (default R13_PUBLIC_URL)."""
    rate_limit_scope: str = "node"
    """R13_RATE_LIMIT_SCOPE: ``node`` (each node counts its own) or ``cluster`` (the database)."""
    stale_after_ms: int = 10_000
    """R13_NODE_STALE_AFTER: a node whose last heartbeat is older is listed as stale."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClusterSettings:
        """R13_NODE_ID, R13_NODE_URL, R13_RATE_LIMIT_SCOPE, R13_NODE_STALE_AFTER."""
        node_id = env.get("R13_NODE_ID", "").strip() or None
        if node_id is not None and not _NODE_ID.fullmatch(node_id):
            raise SettingsError(
                f"R13_NODE_ID={node_id!r}: 1-63 letters, digits, . _ - (starting with one "
                "letter or digit)"
            )
        node_url = env.get("R13_NODE_URL", "").strip().rstrip("/") or None
        if node_url is not None and not node_url.startswith(("http://", "https://")):
            raise SettingsError(f"R13_NODE_URL={node_url!r} must start with http:// or https://")
        scope = env.get("R13_RATE_LIMIT_SCOPE", "").strip().lower() or "node"
        if scope not in RATE_LIMIT_SCOPES:
            raise SettingsError(f"R13_RATE_LIMIT_SCOPE={scope!r} must be node or cluster")
        return cls(
            node_id=node_id,
            node_url=node_url,
            rate_limit_scope=scope,
            stale_after_ms=_int(env, "R13_NODE_STALE_AFTER", 10_000, 100, 86_400_000),
        )


@dataclass(frozen=True)
class Settings:
    """Everything r13 reads from its environment, validated, by section."""

    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    housekeeping: HousekeepingSettings = field(default_factory=HousekeepingSettings)
    live: LiveSettings = field(default_factory=LiveSettings)
    uplink: UplinkSettings = field(default_factory=UplinkSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    hooks: HookSettings = field(default_factory=HookSettings)
    features: tuple[tuple[Feature, bool], ...] = ()
    """R13_FEATURE_<NAME>=0|1: bits forced on the record at start, as (flag, on) pairs."""

    @property
    def data_dir(self) -> Path:
        """The data dir (``storage.data_dir``): most parts of r13 keep something there."""
        return self.storage.data_dir

    @property
    def clustered(self) -> bool:
        """Whether this is a node of a cluster: R13_DATABASE_URL is ``postgresql://``."""
        url = self.storage.database_url or ""
        return url.startswith(("postgresql:", "postgres:"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parse ``env`` (default: the process environment); SettingsError names a bad variable."""
        env = os.environ if env is None else env
        features = []
        for flag in Feature:
            on = _bool(env, f"R13_FEATURE_{flag.name}")
            if on is not None:
                features.append((flag, on))
        return cls(
            server=ServerSettings.from_env(env),
            storage=StorageSettings.from_env(env),
            security=SecuritySettings.from_env(env),
            monitor=MonitorSettings.from_env(env),
            housekeeping=HousekeepingSettings.from_env(env),
            live=LiveSettings.from_env(env),
            uplink=UplinkSettings.from_env(env),
            cluster=ClusterSettings.from_env(env),
            backup=BackupSettings.from_env(env),
            hooks=HookSettings.from_env(env),
            features=tuple(features),
        )

    def with_data_dir(self, data_dir: Path) -> Settings:
        """These settings for another data dir (``r13 --data DIR``)."""
        return replace(self, storage=replace(self.storage, data_dir=Path(data_dir)))

    @staticmethod
    def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
        """This process's environment plus ``extra``: for a tool r13 runs (``pg_dump``)."""
        return {**os.environ, **extra}

    def environment(self) -> dict[str, str]:
        """The process environment with R13_DATA naming this data dir: what ``r13 serve``
        hands to the gunicorn it starts, so its workers read the same settings."""
        return {**os.environ, "R13_DATA": str(self.storage.data_dir)}
