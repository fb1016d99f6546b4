"""Security layer micro-benchmarks: key validation, the permission check, key generation,
and what the whole layer adds to a small packument GET.

Run: .venv/bin/python -m pytest bench/bench_security.py --benchmark-only -q
Goals: key validation <= 20 us (100 us at most), permission check <= 1 us (5 us at most),
100 keys generated and stored < 50 ms (one by one: a commit each; in one batch:
KeyStore.create_many, `r13 keys create --count`), the layer <= 10% of a small packument GET.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import pytest

import app.main as main_module
import r13core.services as services_module
from app.main import create_app
from r13core.access import Action, Policy
from r13core.config import ConfigStore, Feature
from r13core.database import open_database
from r13core.keys import KeyInfo, KeyStore, Permission, hash_secret, new_secret
from r13core.npm_pack import package_tarball, publish_document
from r13core.ratelimit import RateLimiter
from r13core.services import open_services
from r13core.settings import Settings
from r13core.storage.sqlite import SQLiteStorage


@pytest.fixture
def keys(tmp_path: Path) -> tuple[KeyStore, str]:
    store = KeyStore(SQLiteStorage(tmp_path / "r.sqlite3"))
    for n in range(200):
        store.create(f"other-{n}", Permission.READ, None)
    _, secret = store.create("bench", Permission.WRITE, 30)
    return store, secret


@pytest.mark.benchmark(group="key-validation")
def test_key_validation_cached(benchmark: Any, keys: tuple[KeyStore, str]) -> None:
    store, secret = keys
    assert benchmark(store.authenticate, secret).id == "bench"


@pytest.mark.benchmark(group="key-validation")
def test_key_validation_uncached_sha256_and_query(
    benchmark: Any, keys: tuple[KeyStore, str]
) -> None:
    """The uncached path: checksum, sha256, one indexed SELECT per request."""
    store, secret = keys
    db = store._db

    def uncached() -> object:
        return db.key_by_hash(hash_secret(secret))

    assert benchmark(uncached) is not None


@pytest.mark.benchmark(group="permission-check")
def test_permission_check_read(benchmark: Any) -> None:
    from datetime import UTC, datetime

    policy = Policy()
    key = KeyInfo("k", Permission.READ, datetime.now(UTC), None, False)
    benchmark(
        policy.authorize, key, Action.READ, private=True, package="left-pad", client_ip="127.0.0.1"
    )


@pytest.mark.benchmark(group="permission-check")
def test_permission_check_scoped_key_with_rules(benchmark: Any) -> None:
    from datetime import UTC, datetime

    from r13core.access import parse_rules

    policy = Policy(parse_rules([{"package": "@secret/*", "access": "$authenticated"},
                                 {"package": "**", "access": "$all"}]))  # fmt: skip
    key = KeyInfo("k", Permission.WRITE, datetime.now(UTC), None, False,
                  packages=("@mycompany/*",))  # fmt: skip
    benchmark(lambda: policy.authorize(key, Action.PUBLISH, private=True, package="@mycompany/lib"))


@pytest.mark.benchmark(group="key-generation")
def test_generate_100_secrets(benchmark: Any) -> None:
    benchmark(lambda: [new_secret() for _ in range(100)])


@pytest.mark.benchmark(group="key-generation")
def test_create_100_stored_keys(
    benchmark: Any, tmp_path: Path, rounds: Callable[[int], int]
) -> None:
    """100 keys made and stored (each its own SQLite commit, fsync'd)."""
    store = KeyStore(SQLiteStorage(tmp_path / "k.sqlite3"))
    batches = iter(range(10**6))

    def make() -> None:
        r = next(batches)
        for n in range(100):
            store.create(f"k{r}-{n}", Permission.READ, None)

    benchmark.pedantic(make, rounds=rounds(5), iterations=1)


@pytest.mark.benchmark(group="key-generation")
def test_create_100_stored_keys_in_one_batch(
    benchmark: Any, tmp_path: Path, rounds: Callable[[int], int]
) -> None:
    """100 keys made and stored by KeyStore.create_many: one SQLite commit, fsync'd."""
    store = KeyStore(SQLiteStorage(tmp_path / "k.sqlite3"))
    batches = iter(range(10**6))

    def make() -> None:
        r = next(batches)
        store.create_many([f"k{r}-{n}" for n in range(100)], Permission.READ, None)

    benchmark.pedantic(make, rounds=rounds(20), iterations=1)


@pytest.mark.benchmark(group="key-generation")
def test_create_100_audited_keys_in_one_batch(
    benchmark: Any, tmp_path: Path, rounds: Callable[[int], int]
) -> None:
    """What `r13 keys create --count 100` does: the batch plus its one audit event."""
    from r13core.audit import Actor

    services = open_services(Settings.from_env({"R13_DATA": str(tmp_path)}))
    batches = iter(range(10**6))

    def make() -> None:
        r = next(batches)
        ids = [f"k{r}-{n}" for n in range(100)]
        services.identity.create_keys(Actor.cli(), ids, Permission.READ, None)

    benchmark.pedantic(make, rounds=rounds(20), iterations=1)
    services.close()


# -- what the whole layer adds to a request ---------------------------------------------------


class _Bare:
    """The baseline: nothing but what resources read from the context."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def auth_failed(self, ip: str) -> None:
        pass

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.client_ip = "127.0.0.1"
        req.context.identity = None


@dataclass
class Apps:
    secured: falcon.testing.TestClient
    bare: falcon.testing.TestClient
    key: dict[str, str]


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Apps]:
    limiters: list[RateLimiter] = []

    def opener(*a: Any, **kw: Any) -> RateLimiter:
        limiters.append(RateLimiter(*a, **kw))
        return limiters[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(services_module, "RateLimiter", opener)
        env = {"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": "http://r13.test",
               "SECURITY_RATE_LIMIT_MAX": "2147483647"}  # fmt: skip
        settings = Settings.from_env(env)
        _, secret = KeyStore(open_database(tmp_path)).create("w", Permission.WRITE, None)
        secured = falcon.testing.TestClient(create_app(open_services(settings)))
        key = {"Authorization": f"Bearer {secret}"}
        small = {"name": "small", "version": "1.0.0"}
        body = publish_document(small, package_tarball(small))
        r = secured.simulate_put("/small", json=body, headers=key)
        assert r.status_code == 201, r.text
        mp.setattr(main_module, "SecurityMiddleware", _Bare)
        bare_app = create_app(open_services(settings))
        bare_app.hot = None  # the hot reads call the layer's functions: falcon alone here
        bare = falcon.testing.TestClient(bare_app)
        yield Apps(secured, bare, key)
    for lim in limiters:
        lim.close()


@pytest.mark.benchmark(group="request-small-packument")
def test_get_small_packument_with_the_security_layer(benchmark: Any, apps: Apps) -> None:
    """PRIVATE_REGISTRY on: client IP, limiter checks, block check, key, permission, counters."""
    r = benchmark(apps.secured.simulate_get, "/small", headers=apps.key)
    assert r.status_code == 200


@pytest.mark.benchmark(group="request-small-packument")
def test_get_small_packument_without_it(benchmark: Any, apps: Apps, tmp_path: Path) -> None:
    """The same GET anonymous in public mode through a no-op middleware."""
    with ConfigStore(tmp_path) as config:
        config.set_feature(Feature.PRIVATE_REGISTRY, False)
        r = benchmark(apps.bare.simulate_get, "/small")
        config.set_feature(Feature.PRIVATE_REGISTRY, True)
    assert r.status_code == 200


@pytest.mark.benchmark(group="security-layer")
def test_security_layer_alone_per_request(benchmark: Any, apps: Apps) -> None:
    """The middleware's request and response hooks plus the guard, on a prepared request."""
    app = apps.secured.app
    firewall: Any = next(m for m in app._unprepared_middleware if hasattr(m, "strikes"))
    guard = firewall.guard
    env = falcon.testing.create_environ("/small", headers=apps.key, remote_addr="127.0.0.1")
    from r13core.names import PackageName

    name = PackageName.parse("small")

    def layer() -> None:
        req = falcon.Request(env, options=app.req_options)
        resp = falcon.Response(options=app.resp_options)
        firewall.process_request(req, resp)
        guard.require(req, Action.READ, name)
        firewall.process_response(req, resp, None, True)

    benchmark(layer)


@pytest.mark.benchmark(group="security-layer")
def test_request_object_alone(benchmark: Any, apps: Apps) -> None:
    """What making the falcon Request/Response costs (subtract from the line above)."""
    app = apps.secured.app
    env = falcon.testing.create_environ("/small", headers=apps.key, remote_addr="127.0.0.1")
    benchmark(
        lambda: (
            falcon.Request(env, options=app.req_options),
            falcon.Response(options=app.resp_options),
        )
    )
