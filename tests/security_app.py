"""The real app in process over a real data dir, with an admin key: for the identity,
abuse-control and local-access tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import falcon.testing

from app.main import create_app
from r13core.abuse import Blocklist
from r13core.database import open_database
from r13core.keys import KeyStore, Permission
from r13core.services import open_services
from r13core.settings import Settings
from r13core.storage.base import Storage
from r13core.users import UserStore

PUBLIC = "http://r13.test"
PW = "a good password"


@dataclass
class App:
    client: falcon.testing.TestClient
    storage: Storage
    keys: KeyStore
    users: UserStore
    admin: dict[str, str]
    data: Path

    def bearer(self, secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    def get(self, path: str, ip: str, **kw: Any) -> falcon.testing.Result:
        return self.client.simulate_get(path, remote_addr=ip, **kw)

    def blocks(self) -> dict[str, str]:
        """{client: kind} of the blocks in force (read from storage: no request counted)."""
        return {b.ip: b.kind for b in Blocklist(self.storage).active()}


def build(tmp_path: Path, env: dict[str, str] | None = None) -> App:
    """The app for ``env`` (R13_DATA and R13_PUBLIC_URL set), with an admin key."""
    env = {"R13_DATA": str(tmp_path), "R13_PUBLIC_URL": PUBLIC, **(env or {})}
    storage = open_database(tmp_path)
    keys = KeyStore(storage)
    _, admin = keys.create("root", Permission.ADMIN, None)
    app = create_app(open_services(Settings.from_env(env)))
    return App(
        falcon.testing.TestClient(app),
        storage,
        keys,
        UserStore(storage),
        {"Authorization": f"Bearer {admin}"},
        tmp_path,
    )
