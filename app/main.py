"""The app factory: builds every collaborator and wires the routes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon

from app import errors
from app.auth import Authenticator, AuthMiddleware, Guard
from app.http import HostRebaser
from app.monitoring import Monitoring
from app.openapi import OpenAPI
from app.resources import performance
from app.resources.advisories import Advisories
from app.resources.audit import AdvisoriesBulk, AuditQuick
from app.resources.dist_tags import PREFIX as PACKAGE_META_PREFIX
from app.resources.dist_tags import PackageMeta
from app.resources.packages import Packages
from app.resources.search import Search
from app.resources.system import ConfigResource, Ping
from app.resources.whoami import Whoami
from app.service import RegistryService
from r13core.config import Config13, ConfigStore
from r13core.keys import KeyStore
from r13core.monitor import RegistryStats
from r13core.settings import Settings
from r13core.storage.base import Storage

DATABASE = "registry.sqlite3"  # where Registry.open keeps it


def open_config(settings: Settings) -> ConfigStore:
    """Open the data dir's record, applying R13_FEATURE_* overrides."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = ConfigStore(settings.data_dir, defaults=Config13.defaults(settings.public_url))
    current = store.read()
    for flag, on in settings.feature_overrides:
        if current.has(flag) != on:
            current = store.set_feature(flag, on)
    return store


def open_storage(data_dir: Path) -> Storage:
    """The metadata database of ``data_dir`` (connections open lazily, per process)."""
    from r13core.storage.sqlite import SQLiteStorage

    data_dir.mkdir(parents=True, exist_ok=True)
    return SQLiteStorage(data_dir / DATABASE)


@dataclass(frozen=True)
class Services:
    """The model objects one process uses: registry and keys over one storage."""

    registry: RegistryService
    keys: KeyStore
    storage: Storage


def open_services(settings: Settings, config: ConfigStore) -> Services:
    """The default registry and key store: one SQLite database + blob files under the data dir.

    Opening is cheap: the database connection is made lazily, so a worker that
    calls this after fork gets its own.
    """
    from r13core.registry import Registry
    from r13core.tarball import Limits

    registry = Registry.open(
        settings.data_dir,
        public_url=settings.public_url,
        config=config.read,
        limits=Limits(max_tarball=settings.max_body),
    )
    return Services(registry, KeyStore(registry.storage), registry.storage)


def create_app(
    settings: Settings,
    *,
    config: ConfigStore | None = None,
    registry: RegistryService | None = None,
    keys: Authenticator | None = None,
    registry_stats: RegistryStats | None = None,
    sampler_root_pid: int | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """A WSGI app serving r13 for ``settings``.

    ``sampler_root_pid`` (the gunicorn master's pid, given by app/wsgi.py)
    starts this worker's monitor sampler over that process tree.
    """
    store = config if config is not None else open_config(settings)
    if registry is None or keys is None:
        services = open_services(settings, store)
        registry = registry if registry is not None else services.registry
        keys = keys if keys is not None else services.keys
        if registry_stats is None:
            registry_stats = services.registry.stats
    guard = Guard(keys, store.read)
    limit = settings.max_body

    monitoring = Monitoring(
        settings, store, registry_stats=registry_stats, root_pid=sampler_root_pid
    )
    # The monitor first: its latency covers the other middleware. It also does
    # the worker header (X-R13-Worker) under DEBUG: each falcon middleware costs ~3 us.
    middleware: list[Any] = [monitoring.middleware, AuthMiddleware()]
    app = falcon.App(media_type=falcon.MEDIA_JSON, middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = False
    # Query values like "a,b" stay whole strings.
    app.req_options.auto_parse_qs_csv = False
    errors.install(app)

    app.add_route("/-/ping", Ping())
    app.add_route("/-/whoami", Whoami(guard))
    app.add_route("/-/v1/search", Search(registry, guard))
    app.add_route(
        "/-/npm/v1/security/advisories/bulk", AdvisoriesBulk(registry, guard, max_body=limit)
    )
    audit = AuditQuick(registry, guard, max_body=limit)
    app.add_route("/-/npm/v1/security/audits/quick", audit)
    app.add_route("/-/npm/v1/security/audits", audit)
    advisories = Advisories(registry, guard, max_body=limit)
    app.add_route("/_api/advisories", advisories)
    app.add_route("/_api/advisories/{advisory_id}", advisories, suffix="item")
    app.add_route("/_api/config", ConfigResource(store))
    # Sinks read the raw path (names like @scope%2fname); later sinks are tried first,
    # and every route above wins over both.
    hosts = HostRebaser(settings.public_url, settings.allowed_hosts)
    app.add_sink(Packages(registry, guard, max_body=limit, hosts=hosts), prefix=r"/(?!-/|_)")
    app.add_sink(PackageMeta(registry, guard, max_body=limit), prefix=PACKAGE_META_PREFIX)
    app.add_route("/_api/openapi.json", OpenAPI())
    performance.add_routes(app, monitoring)
    if sampler_root_pid is not None:
        monitoring.start()
    return app
