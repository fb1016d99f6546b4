"""Shared fixtures: an in-process app over a recording fake registry, and keys."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from app.main import create_app
from r13core.audit import Actor
from r13core.config import ConfigStore, Feature
from r13core.errors import NotFound, Unauthorized
from r13core.keys import KeyInfo, Permission
from r13core.names import PackageName
from r13core.registry import OwnerCheck, PackageChange
from r13core.services import open_services
from r13core.settings import Settings
from tests import pgserver
from tests.pgserver import PostgresServer

PUBLIC_URL = "https://registry.example.test"

# No test may depend on how fast the machine is: hypothesis's per-example deadline and its
# "generating data is too slow" health check both time the test, so one profile turns them
# off for every property test (a test's own @settings inherits this profile; a test that
# lists suppress_health_check itself must keep too_slow in its list).
hypothesis_settings.register_profile(
    "r13", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("r13")


@dataclass(frozen=True)
class FakeRendered:
    body: bytes
    gzip: bytes
    etag: str


def render(doc: Any) -> FakeRendered:
    body = json.dumps(doc).encode()
    return FakeRendered(body, gzip.compress(body), '"' + hashlib.sha1(body).hexdigest() + '"')


@dataclass(frozen=True)
class FakeBlob:
    path: Path
    size: int
    integrity: str
    etag: str


@dataclass
class FakeRegistry:
    """Answers like the contract says and records every call as (method, args...)."""

    tmp: Path
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    listeners: list[Callable[[PackageChange], None]] = field(default_factory=list)
    tarball_bytes: bytes = b"\x1f\x8b fake tarball bytes"

    def _doc(self, name: PackageName, **extra: Any) -> dict[str, Any]:
        v = "1.0.0"
        tarball = f"{PUBLIC_URL}/{name.tarball_path(v)}"
        return {"name": str(name), "versions": {v: {"dist": {"tarball": tarball}}}, **extra}

    def _known(self, name: PackageName) -> None:
        if name.bare.startswith("missing"):
            raise NotFound(f"no package {name}")

    def packument(self, name: PackageName, *, abbreviated: bool, via: str = "") -> FakeRendered:
        self.calls.append(("packument", str(name), abbreviated))
        self._known(name)
        return render(self._doc(name, abbreviated=abbreviated))

    def packument_for_write(self, name: PackageName) -> FakeRendered:
        self.calls.append(("packument_for_write", str(name)))
        self._known(name)
        return render(self._doc(name, _rev="1-abc"))

    def version(self, name: PackageName, version_or_tag: str, *, via: str = "") -> FakeRendered:
        self.calls.append(("version", str(name), version_or_tag))
        self._known(name)
        return render({"name": str(name), "version": version_or_tag})

    def _may_change(self, name: PackageName, check_owner: OwnerCheck | None) -> None:
        """Ask the ownership check as the registry does at commit (absent: a new package)."""
        if check_owner is not None and not name.bare.startswith("missing"):
            check_owner([m["name"] for m in self.maintainers_of(name)])

    def put_package(
        self,
        name: PackageName,
        body: dict[str, Any],
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> tuple[bool, dict[str, Any]]:
        self.calls.append(("put_package", str(name), body, actor.name))
        self._may_change(name, check_owner)
        return bool(body.get("_attachments")), {"ok": True}

    def put_package_rev(
        self,
        name: PackageName,
        rev: str,
        body: dict[str, Any],
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("put_package_rev", str(name), rev, body, actor.name))
        self._may_change(name, check_owner)
        return {"ok": True}

    def unpublish_package(
        self, name: PackageName, rev: str, *, actor: Actor, check_owner: OwnerCheck | None = None
    ) -> dict[str, Any]:
        self.calls.append(("unpublish_package", str(name), rev, actor.name))
        self._may_change(name, check_owner)
        return {"ok": True}

    def remove_tarball(
        self,
        name: PackageName,
        filename: str,
        rev: str,
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> dict[str, Any]:
        self.calls.append(("remove_tarball", str(name), filename, rev, actor.name))
        self._may_change(name, check_owner)
        return {"ok": True}

    def tarball(self, name: PackageName, filename: str, *, via: str = "") -> FakeBlob:
        self.calls.append(("tarball", str(name), filename))
        self._known(name)
        path = self.tmp / "blob.tgz"
        path.write_bytes(self.tarball_bytes)
        digest = hashlib.sha1(self.tarball_bytes).hexdigest()
        return FakeBlob(path, len(self.tarball_bytes), "sha512-x", f'"{digest}"')

    def dist_tags(self, name: PackageName) -> dict[str, str]:
        self.calls.append(("dist_tags", str(name)))
        return {"latest": "1.0.0"}

    def set_dist_tag(
        self,
        name: PackageName,
        tag: str,
        version: str,
        *,
        actor: Actor,
        check_owner: OwnerCheck | None = None,
    ) -> None:
        self.calls.append(("set_dist_tag", str(name), tag, version, actor.name))
        self._may_change(name, check_owner)

    def remove_dist_tag(
        self, name: PackageName, tag: str, *, actor: Actor, check_owner: OwnerCheck | None = None
    ) -> None:
        self.calls.append(("remove_dist_tag", str(name), tag, actor.name))
        self._may_change(name, check_owner)

    def owners(self, name: PackageName) -> list[dict[str, Any]]:
        self.calls.append(("owners", str(name)))
        return [{"name": "key:admin", "email": ""}]

    def maintainers_of(self, name: PackageName) -> list[dict[str, Any]]:
        """For the guard's ownership check (not recorded: tests count registry calls)."""
        self._known(name)
        return [{"name": "key:admin", "email": ""}, {"name": "key:write", "email": ""}]

    def search(
        self, text: str, size: int, offset: int, *, visible: Callable[[str], bool] | None = None
    ) -> dict[str, Any]:
        self.calls.append(("search", text, size, offset))
        return {"objects": [], "total": 0, "time": "now"}

    def audit_bulk(
        self,
        request: dict[str, list[str]],
        *,
        visible: Callable[[str], bool] | None = None,
        via: str = "",
    ) -> dict[str, Any]:
        self.calls.append(("audit_bulk", request))
        return {}

    def audit_quick(
        self, tree: dict[str, Any], *, visible: Callable[[str], bool] | None = None, via: str = ""
    ) -> dict[str, Any]:
        self.calls.append(("audit_quick", tree))
        return {"advisories": {}, "actions": [], "muted": [], "metadata": {}}

    def add_advisory(self, advisory: dict[str, Any], *, actor: Actor) -> dict[str, Any]:
        self.calls.append(("add_advisory", advisory, actor.name))
        return {"id": 1, **advisory}

    def list_advisories(self) -> list[dict[str, Any]]:
        self.calls.append(("list_advisories",))
        return []

    def remove_advisory(self, advisory_id: str, *, actor: Actor) -> None:
        self.calls.append(("remove_advisory", advisory_id, actor.name))
        if advisory_id == "404":
            raise NotFound("no advisory 404")

    def sweep(self, *, min_age: float = 3600.0, alone: bool = False) -> int:
        return 0

    def subscribe(self, listener: Callable[[PackageChange], None]) -> None:
        self.listeners.append(listener)

    def stats(self) -> dict[str, int]:
        return {"packages": 1, "versions": 1}


class FakeKeys:
    """Three keys by secret: read, write and admin; anything else is refused."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        self.by_secret = {
            f"r13_{perm.name.lower()}": KeyInfo(perm.name.lower(), perm, now, None, False)
            for perm in Permission
        }

    def authenticate(self, secret: str, *, version: object = None) -> KeyInfo:
        try:
            return self.by_secret[secret]
        except KeyError:
            raise Unauthorized("invalid, revoked or expired key") from None


READ = {"Authorization": "Bearer r13_read"}
WRITE = {"Authorization": "Bearer r13_write"}
ADMIN = {"Authorization": "Bearer r13_admin"}


@dataclass
class AppHarness:
    client: falcon.testing.TestClient
    registry: FakeRegistry
    config: ConfigStore

    def set_private(self, on: bool) -> None:
        self.config.set_feature(Feature.PRIVATE_REGISTRY, on)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[AppHarness]:
    settings = Settings.from_env(
        {"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": PUBLIC_URL, "R13_MAX_BODY": "65536"}
    )
    services = open_services(settings)
    registry = FakeRegistry(tmp_path)
    # The app's collaborators, replaced before first use (r13core/services.py).
    vars(services).update(
        registry=registry, authenticator=FakeKeys(), maintainers=registry.maintainers_of
    )
    app = create_app(services)
    yield AppHarness(falcon.testing.TestClient(app), registry, services.config)
    services.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def store(data_dir: Path) -> Iterator[ConfigStore]:
    s = ConfigStore(data_dir)
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _close_rate_limiters(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close the shared-memory limiter of every in-process app a test builds.

    A table stays in /dev/shm until its last user closes it; test processes
    build hundreds of apps, so each one's is closed when its test ends.
    """
    import r13core.services as services_module
    from r13core.ratelimit import RateLimiter

    opened: list[RateLimiter] = []

    def opener(*args: Any, **kwargs: Any) -> RateLimiter:
        limiter = RateLimiter(*args, **kwargs)
        opened.append(limiter)
        return limiter

    monkeypatch.setattr(services_module, "RateLimiter", opener)
    yield
    for limiter in opened:
        limiter.close()


@pytest.fixture(scope="session", autouse=True)
def _remove_shared_segments_left_by_tests(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Tests kill processes on purpose: the shared-memory segments those processes had
    would stay in /dev/shm. Once every test is done, remove the ones of this session's
    data dirs (each name ends with its dir's random id, kept in <data>/.r13-shm.id) that
    no live process maps. Segments of other sessions, other checkouts and running
    servers on the machine are never touched: only their owners know when they are
    unused (one may be between its creation and its mapping)."""
    yield
    shm = Path("/dev/shm")
    if not shm.is_dir():
        return
    ids: set[str] = set()
    for id_file in tmp_path_factory.getbasetemp().rglob(".r13-shm.id"):
        try:
            ids.add(id_file.read_bytes().decode())
        except (OSError, UnicodeDecodeError):
            continue
    mine = [p for p in shm.glob("r13-*") if p.name.rsplit("-", 1)[-1] in ids]
    if not mine:
        return
    in_use: set[str] = set()  # mapped by a live process
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:
            continue
        in_use.update(
            line.rsplit("/", 1)[-1] for line in text.splitlines() if "/dev/shm/r13-" in line
        )
    for p in mine:
        if p.name not in in_use:
            p.unlink(missing_ok=True)


# -- PostgreSQL: one real server per test session (tests/pgserver.py), a database per test --


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this session's own, started on first use, stopped at the end."""
    with pgserver.running() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database, dropped (sessions ended) after the test."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)
