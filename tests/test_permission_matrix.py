"""Every route x every kind of caller, with the status each must get.

The routes come from the app's own route table (falcon's router, plus the
sub-routes each sink serves), so a new route that is not in ``EXPECTED`` fails
here until someone decides who may call it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import pytest

from app.main import create_app
from app.resources.dist_tags import PackageMeta
from app.resources.packages import Packages
from app.resources.signing import Attestations
from r13core.config import Feature
from r13core.database import open_database
from r13core.keys import KeyStore, Permission, hash_secret, new_secret
from r13core.ratelimit import RateLimiter
from r13core.services import open_services
from r13core.settings import Settings
from r13core.storage.base import KeyRecord
from r13core.users import Role, UserStore

# What each sink serves (their docstrings list the same).
SINK_ROUTES: dict[type, list[tuple[str, str]]] = {
    Packages: [
        ("GET", "/:pkg"),
        ("GET", "/:pkg/:version"),
        ("GET", "/:pkg/-/:file.tgz"),
        ("PUT", "/:pkg"),
        ("PUT", "/:pkg/-rev/:rev"),
        ("DELETE", "/:pkg/-rev/:rev"),
        ("DELETE", "/:pkg/-/:file/-rev/:rev"),
    ],
    Attestations: [("GET", "/-/npm/v1/attestations/:pkg@:version")],
    PackageMeta: [
        ("GET", "/-/package/:pkg/owners"),
        ("GET", "/-/package/:pkg/collaborators"),
        ("GET", "/-/package/:pkg/dist-tags"),
        ("PUT", "/-/package/:pkg/dist-tags/:tag"),
        ("DELETE", "/-/package/:pkg/dist-tags/:tag"),
    ],
}

# Who may call what. open: the answer does not depend on the caller at all.
# identity: any live key. read/read_pkg: read permission (read_pkg: on a package, so a
# key's package patterns apply). write_pkg: write on a package. admin. user: a user's token.
# monitoring(_read): the monitor's hook (admin, or read for /metrics; keyless from loopback).
EXPECTED: dict[tuple[str, str], str] = {
    ("GET", "/-/ping"): "open",
    ("GET", "/-/whoami"): "identity",
    ("GET", "/-/v1/search"): "read",
    ("POST", "/-/v1/login"): "open",
    ("GET", "/-/v1/login/{login_id}"): "open",
    ("POST", "/-/v1/login/{login_id}"): "open",
    ("GET", "/-/v1/done/{login_id}"): "open",
    ("POST", "/-/npm/v1/security/advisories/bulk"): "read",
    ("POST", "/-/npm/v1/security/audits"): "read",
    ("POST", "/-/npm/v1/security/audits/quick"): "read",
    ("GET", "/-/npm/v1/tokens"): "identity",
    ("POST", "/-/npm/v1/tokens"): "user",
    ("DELETE", "/-/npm/v1/tokens/token/{key}"): "identity",
    # Webhooks (app/resources/hooks.py): a write key manages its own hooks (r13core's
    # Policy.check_hook), an admin everyone's; the admin API is admin only.
    ("GET", "/-/npm/v1/hooks"): "hook",
    ("POST", "/-/npm/v1/hooks/hook"): "hook",
    ("GET", "/-/npm/v1/hooks/hook/{hook_id}"): "hook",
    ("PUT", "/-/npm/v1/hooks/hook/{hook_id}"): "hook",
    ("DELETE", "/-/npm/v1/hooks/hook/{hook_id}"): "hook",
    ("GET", "/_api/hooks"): "admin",
    ("POST", "/_api/hooks"): "admin",
    ("GET", "/_api/hooks/{hook_id}"): "admin",
    ("DELETE", "/_api/hooks/{hook_id}"): "admin",
    ("GET", "/_api/hooks/{hook_id}/deliveries"): "admin",
    ("POST", "/_api/hooks/{hook_id}/ping"): "admin",
    ("GET", "/-/user/org.couchdb.user:{name}"): "open",
    ("PUT", "/-/user/org.couchdb.user:{name}"): "open",
    ("DELETE", "/-/user/token/{token}"): "open",
    ("GET", "/_api/advisories"): "admin",
    ("POST", "/_api/advisories"): "admin",
    ("DELETE", "/_api/advisories/{advisory_id}"): "admin",
    ("GET", "/_api/uplink"): "admin",
    ("POST", "/_api/uplink/breaker/reset"): "admin",
    ("GET", "/_api/uplink/overrides"): "admin",
    ("PUT", "/_api/uplink/overrides/{name}"): "admin",
    ("DELETE", "/_api/uplink/overrides/{name}"): "admin",
    ("PUT", "/_api/uplink/overrides/{name}/{bare}"): "admin",
    ("DELETE", "/_api/uplink/overrides/{name}/{bare}"): "admin",
    ("GET", "/_api/config"): "monitoring_read",
    ("GET", "/_api/config/layout"): "monitoring_read",
    # The dashboard (app/resources/dashboard.py, session.py): the page and its files are
    # the same for everyone (the data needs a session); signing in depends on the body
    # alone; "who am I" answers anyone (signed_in false without a key) but refuses a
    # lesser key; signing out is an admin's.
    ("GET", "/_dashboard"): "open",
    ("HEAD", "/_dashboard"): "open",
    ("GET", "/_dashboard/"): "open",
    ("HEAD", "/_dashboard/"): "open",
    ("GET", "/_dashboard/static/{digest}/{path:path}"): "open",
    ("HEAD", "/_dashboard/static/{digest}/{path:path}"): "open",
    ("POST", "/_api/session"): "open",
    ("GET", "/_api/session"): "session",
    ("DELETE", "/_api/session"): "admin",
    ("GET", "/_api/security/keys"): "admin",
    ("POST", "/_api/security/keys"): "admin",
    ("GET", "/_api/security/keys/{key_id}"): "admin",
    ("DELETE", "/_api/security/keys/{key_id}"): "admin",
    ("POST", "/_api/security/keys/{key_id}/rotate"): "admin",
    ("GET", "/_api/security/blocks"): "admin",
    ("POST", "/_api/security/blocks"): "admin",
    ("DELETE", "/_api/security/blocks/{ip}"): "admin",
    ("DELETE", "/_api/security/blocks/{ip}/{length}"): "admin",
    ("GET", "/_api/security/metrics"): "admin",
    ("GET", "/_api/security/audit"): "admin",
    ("GET", "/_api/cluster"): "admin",
    ("GET", "/_api/openapi.json"): "open",
    ("GET", "/_api/live"): "live",
    # The WebSocket terminal (app/live/terminal.py): admin only, like the admin API; the
    # in-process client makes no handshake, so an admin gets 426/503, never 401/403.
    ("GET", "/_dashboard/terminal"): "admin",
    ("GET", "/_api/performance/metrics"): "monitoring",
    ("GET", "/_api/performance/summary"): "monitoring",
    ("GET", "/_api/performance/alerts"): "monitoring",
    ("GET", "/_api/performance/history"): "monitoring",
    ("GET", "/metrics"): "monitoring_read",
    ("GET", "/_api/analytics/downloads"): "admin",
    ("GET", "/_api/analytics/publishes"): "admin",
    ("GET", "/_api/analytics/unpublishes"): "admin",
    ("GET", "/_api/analytics/top"): "admin",
    # The dashboard's Users section (app/resources/users.py).
    ("GET", "/_api/users"): "admin",
    ("POST", "/_api/users"): "admin",
    ("GET", "/_api/users/{name}"): "admin",
    ("PATCH", "/_api/users/{name}"): "admin",
    ("DELETE", "/_api/users/{name}"): "admin",
    ("POST", "/_api/users/{name}/password"): "admin",
    # The Packages section: read first, then read on the package named by ?name= (here
    # none is given, so a key scoped to other packages gets the 400, not a 403).
    ("GET", "/_api/packages/overview"): "read",
    ("GET", "/:pkg"): "read_pkg",
    ("GET", "/:pkg/:version"): "read_pkg",
    ("GET", "/:pkg/-/:file.tgz"): "read_pkg",
    ("PUT", "/:pkg"): "write_pkg",
    ("PUT", "/:pkg/-rev/:rev"): "write_pkg",
    ("DELETE", "/:pkg/-rev/:rev"): "write_pkg",
    ("DELETE", "/:pkg/-/:file/-rev/:rev"): "write_pkg",
    ("GET", "/-/package/:pkg/owners"): "read_pkg",
    ("GET", "/-/npm/v1/attestations/:pkg@:version"): "read_pkg",
    ("GET", "/-/npm/v1/keys"): "open",
    ("GET", "/-/package/:pkg/collaborators"): "read_pkg",
    ("GET", "/-/package/:pkg/dist-tags"): "read_pkg",
    ("PUT", "/-/package/:pkg/dist-tags/:tag"): "write_pkg",
    ("DELETE", "/-/package/:pkg/dist-tags/:tag"): "write_pkg",
}

CALLERS = ("anonymous", "read", "write", "admin", "expired", "revoked", "wrong_cidr",
           "wrong_scope", "scoped_admin", "user")  # fmt: skip
OK = "ok"  # anything but 401/403 (404 for a missing package, 400 for an empty body...)

# [kind][caller] -> OK, 401 or 403 (PRIVATE_REGISTRY on). Bad keys are 401 everywhere.
# scoped_admin: an admin key limited to packages (stored before r13 refused to make one):
# it never administers, so it is wrong_scope everywhere.
_BAD = {"anonymous": 401, "expired": 401, "revoked": 401, "wrong_cidr": 401}
RULES: dict[str, dict[str, Any]] = {
    "identity": {**_BAD, "read": OK, "write": OK, "admin": OK, "wrong_scope": OK, "user": OK},
    "read": {**_BAD, "read": OK, "write": OK, "admin": OK, "wrong_scope": OK, "user": OK},
    "read_pkg": {**_BAD, "read": OK, "write": OK, "admin": OK, "wrong_scope": 403, "user": OK},
    "write_pkg": {**_BAD, "read": 403, "write": OK, "admin": OK, "wrong_scope": 403, "user": OK},
    "admin": {**_BAD, "read": 403, "write": 403, "admin": OK, "wrong_scope": 403, "user": 403},
    "user": {**_BAD, "read": 403, "write": 403, "admin": 403, "wrong_scope": 403, "user": OK},
    "hook": {**_BAD, "read": 403, "write": OK, "admin": OK, "wrong_scope": OK, "user": OK},
    # app/monitoring.py: a key is checked (admin; read for /metrics); no key: loopback only.
    "monitoring": {
        **_BAD,
        "anonymous": OK,
        "read": 403,
        "write": 403,
        "admin": OK,
        "wrong_scope": 403,
        "user": 403,
    },
    # The live channel (app/live/channel.py): a key with read, even while the registry is
    # public (the handshake itself is refused with 426 here: no Upgrade headers).
    "live": {**_BAD, "read": OK, "write": OK, "admin": OK, "wrong_scope": OK, "user": OK},
    "session": {
        **_BAD,
        "anonymous": OK,
        "read": 403,
        "write": 403,
        "admin": OK,
        "wrong_scope": 403,
        "user": 403,
    },
    "monitoring_read": {
        **_BAD,
        "anonymous": OK,
        "read": OK,
        "write": OK,
        "admin": OK,
        "wrong_scope": OK,
        "user": OK,
    },
}


for _rule in RULES.values():
    _rule["scoped_admin"] = _rule["wrong_scope"]


def _walk(nodes: list[Any]) -> Iterator[tuple[str, str]]:
    for node in nodes:
        for method, responder in (node.method_map or {}).items():
            if getattr(responder, "__name__", "").startswith("on_"):
                yield method, node.uri_template
        yield from _walk(node.children)


def route_table(app: falcon.App[falcon.Request, falcon.Response]) -> list[tuple[str, str]]:
    """Every (method, route) the app serves: falcon's routes, then each sink's sub-routes."""
    routes = sorted(_walk(app._router._roots))
    for _, sink, _ in app._sinks:
        routes.extend(SINK_ROUTES[type(sink)])  # KeyError: a new sink needs its routes listed
    return routes


def _settings(data: Path) -> Settings:
    env = {
        "R13_DATA": str(data),
        "R13_PUBLIC_URL": "http://r13.test",
        "SECURITY_RATE_LIMIT_MAX": "1000000",
        "R13_AUTH_RATE_LIMIT_MAX": "1000000",
        "R13_BLOCK_AUTH_FAILURES": "0",
        "R13_BLOCK_ANOMALIES": "0",
        "R13_BLOCK_LIMIT_VIOLATIONS": "0",
    }
    return Settings.from_env(env)


def _discover() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        limiters: list[RateLimiter] = []
        import r13core.services as services_module

        def opener(*a: Any, **kw: Any) -> RateLimiter:
            limiters.append(RateLimiter(*a, **kw))
            return limiters[-1]

        mp.setattr(services_module, "RateLimiter", opener)
        routes = route_table(create_app(open_services(_settings(Path(tmp)))))
        for lim in limiters:
            lim.close()
    return routes


ROUTES = _discover()


@dataclass
class World:
    client: falcon.testing.TestClient
    headers: dict[str, dict[str, str]]
    set_private: Any


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("matrix")
    with pytest.MonkeyPatch.context() as mp:
        limiters: list[RateLimiter] = []
        import r13core.services as services_module

        def opener(*a: Any, **kw: Any) -> RateLimiter:
            limiters.append(RateLimiter(*a, **kw))
            return limiters[-1]

        mp.setattr(services_module, "RateLimiter", opener)
        settings = _settings(data)
        storage = open_database(data)
        keys = KeyStore(storage)
        secrets: dict[str, str] = {}
        for perm in ("read", "write", "admin"):
            secrets[perm] = keys.create(perm, Permission[perm.upper()], None)[1]
        # Made two days ago, for one day: expired whatever the speed of the machine.
        two_days_ago = KeyStore(storage, clock=lambda: time.time() - 2 * 86400)
        secrets["expired"] = two_days_ago.create("expired", Permission.ADMIN, 1)[1]
        secrets["revoked"] = keys.create("revoked", Permission.ADMIN, None)[1]
        keys.revoke("revoked")
        secrets["wrong_cidr"] = keys.create("cidr", Permission.ADMIN, None, cidr=["10.0.0.0/8"])[1]
        secrets["wrong_scope"] = keys.create(
            "scope", Permission.WRITE, None, packages=["@other/*"]
        )[1]
        secrets["scoped_admin"] = new_secret()
        storage.add_key(
            KeyRecord("scoped-admin", hash_secret(secrets["scoped_admin"]), 3, 1.0, None, False,
                      packages=("@other/*",))
        )  # fmt: skip
        UserStore(storage).add("uma", "uma's password", Role.PUBLISHER)
        secrets["user"] = keys.create("uma-1", Permission.WRITE, None, owner="uma")[1]
        headers = {name: {"Authorization": f"Bearer {s}"} for name, s in secrets.items()}
        headers["anonymous"] = {}
        app = create_app(open_services(settings))
        from r13core.config import ConfigStore

        config = ConfigStore(data)

        def set_private(on: bool) -> None:
            config.set_feature(Feature.PRIVATE_REGISTRY, on)

        yield World(falcon.testing.TestClient(app), headers, set_private)
        config.close()
        for lim in limiters:
            lim.close()


_PARAMS = {
    "{login_id}": "nope",
    "{key}": "nope",
    "{name}": "nobody",
    "{token}": "r13_nope",
    "{advisory_id}": "999",
    "{key_id}": "nope",
    "{hook_id}": "nope",
    "{ip}": "192.0.2.77",
    "{length}": "64",
    "{bare}": "pkg",
    "{digest}": "0000000000000000",
    "{path:path}": "js/main.js",
    ":pkg": "@scope%2fpkg",
    ":version": "1.0.0",
    ":file.tgz": "pkg-1.0.0.tgz",
    ":file": "pkg-1.0.0.tgz",
    ":rev": "1-abc",
    ":tag": "beta",
}


def concrete(route: str) -> str:
    for placeholder, value in _PARAMS.items():
        route = route.replace(placeholder, value)
    return route


def test_the_matrix_covers_exactly_the_route_table() -> None:
    assert set(ROUTES) == set(EXPECTED), (
        f"not in the matrix: {sorted(set(ROUTES) - set(EXPECTED))}; "
        f"gone from the app: {sorted(set(EXPECTED) - set(ROUTES))}"
    )


@pytest.mark.parametrize("private", [True, False], ids=["private", "public"])
@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
def test_every_caller_gets_the_expected_status(
    world: World, route: tuple[str, str], private: bool
) -> None:
    method, template = route
    kind = EXPECTED[route]
    world.set_private(private)
    path = concrete(template)
    body: dict[str, Any] = {"json": {}} if method in ("POST", "PUT") else {}
    if template == "/-/package/:pkg/dist-tags/:tag" and method == "PUT":
        body = {"body": '"1.0.0"', "headers": {"Content-Type": "application/json"}}
    got: dict[str, int] = {}
    for caller in CALLERS:
        extra_headers = body.get("headers", {})
        kwargs = {k: v for k, v in body.items() if k != "headers"}
        r = world.client.simulate_request(
            method, path, headers={**world.headers[caller], **extra_headers},
            remote_addr="127.0.0.1", **kwargs,
        )  # fmt: skip
        got[caller] = r.status_code
        assert r.status_code != 500, (caller, r.text)
        if kind == "open":
            continue
        want = RULES[kind][caller]
        if not private and caller == "anonymous" and kind in ("read", "read_pkg"):
            want = OK
        if want == OK:
            assert r.status_code not in (401, 403), (caller, r.status_code, r.text)
        else:
            assert r.status_code == want, (caller, r.status_code, r.text)
        if caller == "wrong_cidr":
            assert r.headers.get("WWW-Authenticate") == "ipaddress"
    if kind == "open":
        assert len(set(got.values())) == 1, got
