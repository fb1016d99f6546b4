"""An in-process r13 over a real data dir (SQLite, blobs, the shared limiter) for the
security-review tests: keys, users, logins and publishes the way clients make them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon.testing

from app.main import create_app
from r13core.audit import AuditLog
from r13core.config import ConfigStore, Feature
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.names import PackageName
from r13core.services import open_services
from r13core.settings import Settings
from r13core.storage.sqlite import SQLiteStorage
from r13core.users import UserStore
from tests.npm_builders import publish_body

PUBLIC = "http://r13.test"
PW = "a good password"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def quote(name: str) -> str:
    return name.replace("/", "%2f")


@dataclass
class Served:
    """The app and direct handles on its data dir (as the CLI would open it)."""

    client: falcon.testing.TestClient
    data: Path
    config: ConfigStore
    storage: SQLiteStorage
    keys: KeyStore
    users: UserStore
    audit: AuditLog
    admin: dict[str, str]

    def key(self, key_id: str, permission: Permission, **options: Any) -> dict[str, str]:
        """A new key's Authorization header."""
        _, secret = self.keys.create(key_id, permission, None, **options)
        return bearer(secret)

    def login(self, name: str, password: str = PW, **kw: Any) -> falcon.testing.Result:
        """npm's legacy login (and adduser, when signup is open)."""
        return self.client.simulate_put(
            f"/-/user/org.couchdb.user:{name}",
            json={"name": name, "password": password, "email": f"{name}@example.test"},
            **kw,
        )

    def session(self, name: str, password: str = PW) -> dict[str, str]:
        """The Authorization header of a fresh login of ``name``."""
        r = self.login(name, password)
        assert r.status_code == 201, r.text
        return bearer(r.json["token"])

    def publish(
        self, name: str, version: str, headers: dict[str, str], **kw: Any
    ) -> falcon.testing.Result:
        """``npm publish`` of ``name@version``."""
        return self.client.simulate_put(
            f"/{quote(name)}", json=publish_body(name, version, **kw), headers=headers
        )

    def set_private(self, on: bool) -> None:
        self.config.set_feature(Feature.PRIVATE_REGISTRY, on)


def serve(
    data: Path,
    env: dict[str, str] | None = None,
    *,
    owners: Callable[[PackageName], list[dict[str, Any]]] | None = None,
) -> Served:
    """r13 over ``data`` with ``env`` (R13_* security settings) and a root admin key.

    ``owners`` replaces the registry's maintainer lookup the app's early ownership
    check uses (the answer at commit reads storage itself).
    """
    full = {"R13_DATA": str(data), "R13_PUBLIC_URL": PUBLIC, **(env or {})}
    storage = open_database(data)
    assert isinstance(storage, SQLiteStorage)
    keys = KeyStore(storage)
    _, admin = keys.create("root", Permission.ADMIN, None)
    services = open_services(Settings.from_env(full))
    config = services.config
    if owners is not None:
        services.maintainers = owners
    app = create_app(services)
    return Served(
        falcon.testing.TestClient(app),
        data,
        config,
        storage,
        keys,
        UserStore(storage),
        AuditLog(storage),
        bearer(admin),
    )
