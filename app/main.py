"""The app factory: builds every collaborator and wires the routes."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon

from app import errors
from app.auth import Authenticator, Guard
from app.housekeeping import Housekeeping
from app.http import HostRebaser
from app.monitoring import Monitoring
from app.openapi import OpenAPI
from app.resources import analytics, performance
from app.resources.advisories import Advisories
from app.resources.audit_log import SecurityAuditLog
from app.resources.dist_tags import PREFIX as PACKAGE_META_PREFIX
from app.resources.dist_tags import ROUTES as PACKAGE_META_ROUTES
from app.resources.dist_tags import PackageMeta
from app.resources.login import CouchUser, Logout, WebLogin
from app.resources.npm_audit import AdvisoriesBulk, AuditQuick
from app.resources.packages import ROUTES as PACKAGE_ROUTES
from app.resources.packages import Packages
from app.resources.search import Search
from app.resources.security import SecurityBlocks, SecurityKeys, SecurityMetrics
from app.resources.system import ConfigResource, Ping
from app.resources.tokens import Tokens
from app.resources.whoami import Whoami
from app.security_middleware import SecurityMiddleware, SecurityServices, open_security
from app.service import RegistryService
from r13core.abuse import AbuseControl
from r13core.config import Config13, ConfigStore
from r13core.database import Storage, open_database
from r13core.datadir import make_private_dirs, secure_data_dir
from r13core.identity import Identity, expiry_days
from r13core.keys import KeyStore
from r13core.logins import Logins
from r13core.monitor import RegistryStats
from r13core.names import PackageName
from r13core.ratelimit import RateLimiter
from r13core.settings import SecuritySettings, Settings, database_url
from r13core.usage import Analytics

log = logging.getLogger("r13")


def open_config(settings: Settings) -> ConfigStore:
    """Open the data dir's record, applying R13_FEATURE_* overrides.

    The data dir is checked first (r13core/datadir.py): created 0700, refused
    when another user owns it or others may write it, narrowed when older.
    """
    for change in secure_data_dir(settings.data_dir):
        log.warning("r13: %s", change)
    store = ConfigStore(settings.data_dir, defaults=Config13.defaults(settings.public_url))
    current = store.read()
    for flag, on in settings.feature_overrides:
        if current.has(flag) != on:
            current = store.set_feature(flag, on)
    return store


def open_storage(data_dir: Path, url: str | None = None) -> Storage:
    """The metadata database: ``url``, else R13_DATABASE_URL, else ``data_dir``'s SQLite file.

    Connections open lazily, per process (after fork) and thread.
    """
    make_private_dirs(data_dir)
    return open_database(data_dir, url if url is not None else database_url(os.environ))


@dataclass(frozen=True)
class Services:
    """The model objects one process uses: registry and keys over one storage."""

    registry: RegistryService
    keys: KeyStore
    storage: Storage


def open_services(settings: Settings, config: ConfigStore) -> Services:
    """The registry and key store over the database (``settings.storage_url``) and the blobs.

    Opening is cheap: the database connection is made lazily, so a worker that
    calls this after fork gets its own.
    """
    from r13core.registry import Registry
    from r13core.tarball import Limits

    storage = open_storage(settings.data_dir, settings.storage_url)
    registry = Registry.open(
        settings.data_dir,
        storage=storage,
        public_url=settings.public_url,
        config=config.read,
        limits=Limits(max_tarball=settings.max_body),
    )
    return Services(registry, KeyStore(storage), storage)


def create_app(
    settings: Settings,
    *,
    config: ConfigStore | None = None,
    registry: RegistryService | None = None,
    keys: Authenticator | None = None,
    registry_stats: RegistryStats | None = None,
    sampler_root_pid: int | None = None,
    security: SecurityServices | None = None,
    security_settings: SecuritySettings | None = None,
    owners: Callable[[PackageName], list[dict[str, Any]]] | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """A WSGI app serving r13 for ``settings``.

    ``sampler_root_pid`` (the gunicorn master's pid, given by app/wsgi.py)
    marks a real server: this worker starts its monitor sampler over that
    process tree, its usage flusher, holds the instance lock and runs the
    sweeper's election (app/housekeeping.py).
    ``security_settings`` default to the process environment (R13_TRUSTED_PROXIES,
    R13_OPEN_SIGNUP, R13_ACCESS_RULES, R13_BLOCK_*...). Call it in each worker
    after fork: it opens the shared rate-limiter table of the data dir.
    ``owners`` looks up a package's maintainers for the ownership check
    (default: the registry's ``owners``).
    """
    store = config if config is not None else open_config(settings)
    storage = None
    if registry is None or keys is None:
        services = open_services(settings, store)
        registry = registry if registry is not None else services.registry
        storage = services.storage
        if registry_stats is None:
            registry_stats = services.registry.stats
    if storage is None:  # identity, audit and usage live in the same database
        storage = open_storage(settings.data_dir, settings.storage_url)
    if security is None:
        sec_settings = security_settings or SecuritySettings.from_env(os.environ)
        security = open_security(storage, sec_settings)
    keys = keys if keys is not None else security.keys
    owners = owners if owners is not None else registry.owners
    monitoring = Monitoring(
        settings, store, registry_stats=registry_stats, root_pid=sampler_root_pid, usage=storage
    )
    registry.subscribe(monitoring.package_changed)
    housekeeping = Housekeeping(settings, registry)
    guard = Guard(keys, store.read, policy=security.policy, owners=owners)
    limit = settings.max_body
    make_private_dirs(settings.data_dir)
    limiter = RateLimiter(settings.data_dir, "security", security.settings.limiter_slots)
    firewall = SecurityMiddleware(settings, security, guard, limiter)
    # The monitor first: its latency covers the other middleware. It also does
    # the worker header (X-R13-Worker) under DEBUG: each falcon middleware costs ~3 us.
    middleware: list[Any] = [monitoring.middleware, firewall]
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
    # Identity (docs/identity.md): npm login (legacy and web), logout, tokens, admin API;
    # each change is one call into r13core, which audits it.
    expiry = settings.api_key_expiry_ms
    identity = Identity(
        security.keys, security.users, security.audit, token_days=expiry_days(expiry)
    )
    logins = Logins(
        identity,
        security.storage,
        open_signup=security.settings.open_signup,
        signup_role=security.settings.signup_role,
    )
    app.add_route("/-/user/org.couchdb.user:{name}", CouchUser(logins, firewall.auth_failed))
    app.add_route("/-/user/token/{token}", Logout(identity))
    web = WebLogin(logins, settings.public_url, firewall.auth_failed)
    app.add_route("/-/v1/login", web)
    app.add_route("/-/v1/login/{login_id}", web, suffix="page")
    app.add_route("/-/v1/done/{login_id}", web, suffix="done")
    tokens = Tokens(identity, guard)
    app.add_route("/-/npm/v1/tokens", tokens)
    app.add_route("/-/npm/v1/tokens/token/{key}", tokens, suffix="item")
    security_keys = SecurityKeys(identity, guard, expiry)
    app.add_route("/_api/security/keys", security_keys)
    app.add_route("/_api/security/keys/{key_id}", security_keys, suffix="item")
    app.add_route("/_api/security/keys/{key_id}/rotate", security_keys, suffix="rotate")
    blocks = SecurityBlocks(AbuseControl(security.blocks, security.audit, limiter), guard)
    app.add_route("/_api/security/blocks", blocks)
    app.add_route("/_api/security/blocks/{ip}", blocks, suffix="item")
    app.add_route("/_api/security/blocks/{ip}/{length}", blocks, suffix="prefix")
    app.add_route("/_api/security/metrics", SecurityMetrics(security, guard))
    app.add_route("/_api/security/audit", SecurityAuditLog(security.audit, guard))
    # Sinks read the raw path (names like @scope%2fname); later sinks are tried first,
    # and every route above wins over both.
    hosts = HostRebaser(settings.public_url, settings.allowed_hosts, listen_port=settings.port)
    app.add_sink(
        Packages(registry, guard, max_body=limit, hosts=hosts, on_download=monitoring.downloaded),
        prefix=r"/(?!-/|_)",
    )
    app.add_sink(PackageMeta(registry, guard, max_body=limit), prefix=PACKAGE_META_PREFIX)
    app.add_route("/_api/openapi.json", OpenAPI())
    performance.add_routes(app, monitoring)
    analytics.add_routes(
        app, analytics.AnalyticsResource(Analytics(storage), guard, monitoring.usage)
    )
    monitoring.middleware.declare_routes(PACKAGE_ROUTES | PACKAGE_META_ROUTES)
    if sampler_root_pid is not None:
        monitoring.start()
        housekeeping.start()
    return app
