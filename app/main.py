"""The app factory: builds every collaborator and wires the routes."""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable, Iterable
from typing import Any

import falcon

from app import errors
from app.auth import Guard
from app.hosts import HostRebaser
from app.hot_reads import HotReads
from app.housekeeping import Housekeeping
from app.live.channel import LiveChannel
from app.live.hub import Hub
from app.live.lifecycle import worker_alive
from app.live.terminal import TerminalResource
from app.live.websocket import WebSockets, WebSocketSettings
from app.monitoring import Monitoring
from app.resources import analytics, dashboard, hooks, performance, uplink
from app.resources.advisories import Advisories
from app.resources.audit_log import SecurityAuditLog
from app.resources.cluster import ClusterNodes
from app.resources.dist_tags import PREFIX as PACKAGE_META_PREFIX
from app.resources.dist_tags import ROUTES as PACKAGE_META_ROUTES
from app.resources.dist_tags import PackageMeta
from app.resources.login import CouchUser, Logout, WebLogin
from app.resources.npm_audit import AdvisoriesBulk, AuditQuick
from app.resources.package_overview import PackageOverview
from app.resources.packages import ROUTES as PACKAGE_ROUTES
from app.resources.packages import AccelRedirect, Packages
from app.resources.search import Search
from app.resources.security import SecurityBlocks, SecurityKeys, SecurityMetrics
from app.resources.session import SessionResource
from app.resources.signing import ATTESTATIONS_ROUTE, Attestations, RegistryKeys
from app.resources.system import ConfigLayout, ConfigResource, OpenAPIDocument, Ping
from app.resources.tokens import Tokens
from app.resources.users import Users
from app.resources.whoami import Whoami
from app.security_middleware import SecurityMiddleware, own_origins
from app.service import RegistryService
from r13core.registry.attestations import ATTESTATIONS_PATH
from r13core.services import Services
from r13core.sessions import Sessions

log = logging.getLogger("r13")


class R13App(falcon.App[falcon.Request, falcon.Response]):
    """falcon's app with the hot reads in front (app/hot_reads.py): a request they do
    not answer goes through falcon as before."""

    hot: HotReads | None = None

    def __call__(self, env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        hot = self.hot
        if hot is not None:
            out = hot(env, start_response)
            if out is not None:
                return out
        return super().__call__(env, start_response)

    def routed(self, path: str) -> bool:
        """Whether one of falcon's routes (not a sink) answers ``path``."""
        return self._router.find(path) is not None


def create_app(services: Services, *, root_pid: int | None = None) -> R13App:
    """A WSGI app serving r13 with ``services`` (r13core/services.py, the one wiring).

    ``root_pid`` (the gunicorn master's pid, given by app/wsgi.py) marks a real
    server: this worker then starts its monitor sampler over that process tree,
    its usage flusher, holds the instance lock and runs the sweeper's election
    (app/housekeeping.py). Call it in each worker after fork: the services map
    the data dir's shared tables in this process.
    """
    settings = services.settings
    for notice in services.notices:
        log.warning("r13: %s", notice)
    store = services.config
    services.apply_feature_overrides()
    registry: RegistryService = services.registry
    # A node of a cluster (docs/cluster.md): its sampler's leader writes the heartbeat.
    heartbeat = services.heartbeat() if services.cluster is not None else None
    monitoring = Monitoring(
        settings,
        store,
        registry_stats=registry.stats,
        root_pid=root_pid,
        usage=services.storage,
        uplink_state=lambda: services.uplink.breaker.state().as_dict(),
        events=services.events,
        on_turn=heartbeat.beat if heartbeat is not None else None,
    )
    registry.subscribe(monitoring.package_changed)
    services.uplink.count = monitoring.metrics.count  # cache hits, upstream latency, errors
    housekeeping = Housekeeping(settings, registry, jobs=[services.hook_worker])
    # A publish or unpublish queued its deliveries: this worker's deliverer looks at once.
    registry.subscribe(lambda _change: services.hook_worker.wake())
    guard = Guard(
        services.authenticator, store.read, policy=services.policy, owners=services.maintainers
    )
    limit = settings.server.max_body
    firewall = SecurityMiddleware(services, guard)
    # The monitor first: its latency covers the other middleware. It also does
    # the worker header (X-R13-Worker) under DEBUG: each falcon middleware costs ~3 us.
    middleware: list[Any] = [monitoring.middleware, firewall]
    app = R13App(media_type=falcon.MEDIA_JSON, middleware=middleware)
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
    # Signatures and provenance (docs/signatures.md).
    app.add_route("/-/npm/v1/keys", RegistryKeys(services.registry_keys))
    app.add_route("/_api/config/layout", ConfigLayout(store))
    # Identity (docs/identity.md): npm login (legacy and web), logout, tokens, admin API;
    # each change is one call into r13core, which audits it.
    identity, logins = services.identity, services.logins
    expiry = settings.security.api_key_expiry_ms
    app.add_route("/-/user/org.couchdb.user:{name}", CouchUser(logins, firewall.auth_failed))
    app.add_route("/-/user/token/{token}", Logout(identity))
    files = dashboard.StaticFiles()
    web = WebLogin(
        logins,
        settings.server.public_url,
        firewall.auth_failed,
        stylesheet=files.base + "css/dashboard.css",
    )
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
    blocks = SecurityBlocks(services.abuse, guard)
    app.add_route("/_api/security/blocks", blocks)
    app.add_route("/_api/security/blocks/{ip}", blocks, suffix="item")
    app.add_route("/_api/security/blocks/{ip}/{length}", blocks, suffix="prefix")
    app.add_route("/_api/security/metrics", SecurityMetrics(services, guard))
    app.add_route("/_api/security/audit", SecurityAuditLog(services.audit, guard))
    app.add_route("/_api/cluster", ClusterNodes(services, guard))
    sessions = Sessions(identity)
    app.add_route(
        "/_api/session",
        SessionResource(sessions, guard, settings.server.public_url, firewall.auth_failed),
    )
    # The dashboard's Users and Packages sections (docs/dashboard.md).
    users = Users(identity, guard)
    app.add_route("/_api/users", users)
    app.add_route("/_api/users/{name}", users, suffix="item")
    app.add_route("/_api/users/{name}/password", users, suffix="password")
    app.add_route("/_api/packages/overview", PackageOverview(registry, guard))
    # Sinks read the raw path (names like @scope%2fname); later sinks are tried first,
    # and every route above wins over both.
    server = settings.server
    hosts = HostRebaser(server.public_url, server.allowed_hosts, listen_port=server.port)
    packages = Packages(
        registry,
        guard,
        max_body=limit,
        hosts=hosts,
        on_download=monitoring.downloaded,
        accel=AccelRedirect(server.accel_redirect, settings.storage.blob_path)
        if server.accel_redirect
        else None,
    )
    app.add_sink(packages, prefix=r"/(?!-/|_)")
    app.add_sink(PackageMeta(registry, guard, max_body=limit), prefix=PACKAGE_META_PREFIX)
    channel = live_channel(services, guard, monitoring)
    app.add_route("/_api/live", channel)
    # The terminal (docs/terminal.md) shares the worker's WebSockets (cap, shutdown).
    origins = own_origins(server.public_url, server.allowed_hosts)
    terminal = TerminalResource(channel.sockets, guard, services, origins)
    app.add_route("/_dashboard/terminal", terminal)
    uplink.add_routes(app, uplink.UplinkAdmin(services.uplink, guard, max_body=limit))
    hooks.add_routes(app, services.hooks, guard)  # webhooks (docs/webhooks.md)
    app.add_sink(
        Attestations(registry, guard, upstream=services.uplink.attestations),
        prefix=ATTESTATIONS_PATH,
    )
    dashboard.add_routes(app, files)
    app.add_route("/_api/openapi.json", OpenAPIDocument())
    performance.add_routes(app, monitoring)
    analytics.add_routes(
        app, analytics.AnalyticsResource(services.analytics, guard, monitoring.usage)
    )
    monitoring.middleware.declare_routes(
        PACKAGE_ROUTES | PACKAGE_META_ROUTES | {ATTESTATIONS_ROUTE}
    )
    if server.hot_reads:
        app.hot = HotReads(
            monitor=monitoring.middleware,
            firewall=firewall,
            packages=packages,
            guard=guard,
            config=store,
            routed=app.routed,
        )
    if root_pid is not None:
        monitoring.start()
        housekeeping.start()
        if services.cluster is not None:  # one worker of the node listens to the others
            listener = services.cluster_listener()
            listener.start()
            atexit.register(listener.stop)
    return app


def live_channel(services: Services, guard: Guard, monitoring: Monitoring) -> LiveChannel:
    """``GET /_api/live`` (docs/live.md): this worker's WebSockets, its fan-out hub, the
    channel's resource."""
    settings = services.settings
    live = settings.live
    sockets = WebSockets(
        WebSocketSettings(
            max_message=live.max_message,
            ping_interval=live.ping_interval_ms / 1000,
            idle_timeout=live.idle_timeout_ms / 1000,
            max_connections=live.max_connections,
        ),
        alive=worker_alive,
    )
    channel: LiveChannel
    hub = Hub(
        services.config,
        services.events,
        authenticate=lambda secret, version: guard.authenticate(secret, version=version),
        auth_version=services.storage.auth_version,
        reader=lambda identity, address: channel.reader(identity, address),
        metrics=monitoring.metrics,
        heartbeat_interval=live.heartbeat_interval_ms / 1000,
    )
    # A change made in this worker reaches its own clients before it is even durable,
    # like every request here already sees it (the other workers wake on the events log).
    services.config_changes.on_applied(hub.check_record)
    server = settings.server
    channel = LiveChannel(
        sockets,
        hub,
        guard,
        services.policy,
        services.config,
        services.config_changes,
        own_origins(server.public_url, server.allowed_hosts),
    )
    return channel
