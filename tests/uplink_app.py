"""The real app in process over a real data dir, proxying to a test upstream.

The uplink's clocks (max age, breaker) are one controllable clock, so tests
move time instead of waiting for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import falcon.testing

from app.main import create_app
from r13core.keys import KeyStore, Permission
from r13core.services import Services, open_services
from r13core.settings import Settings

PUBLIC = "http://r13.test"


@dataclass
class Clock:
    now_ms: int = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@dataclass
class ProxyApp:
    client: falcon.testing.TestClient
    services: Services
    clock: Clock
    admin: dict[str, str]
    writer: dict[str, str]
    data: Path
    env: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, **kw: Any) -> falcon.testing.Result:
        return self.client.simulate_get(path, **kw)

    def abbreviated(self, path: str) -> falcon.testing.Result:
        return self.client.simulate_get(
            path, headers={"Accept": "application/vnd.npm.install-v1+json"}
        )

    def publish(self, name: str, body: dict[str, Any], *, admin: bool = False) -> Any:
        segment = name.replace("/", "%2f")
        return self.client.simulate_put(
            f"/{segment}", json=body, headers=self.admin if admin else self.writer
        )


def build(
    data: Path, upstream_url: str, env: dict[str, str] | None = None, *, keys: bool = True
) -> ProxyApp:
    """The app with PROXY_MODE on, reads open to anyone, the uplink at ``upstream_url``.

    ``keys=False`` for a second app on the same data dir (another worker): the
    first made the admin and writer keys.
    """
    full_env = {
        "R13_DATA": str(data),
        "R13_PUBLIC_URL": PUBLIC,
        "R13_UPLINK_URL": upstream_url,
        "R13_FEATURE_PROXY_MODE": "1",
        "R13_FEATURE_PRIVATE_REGISTRY": "0",
        "R13_UPLINK_TIMEOUT": "2000",
        "R13_UPLINK_CONNECT_TIMEOUT": "2000",
        **(env or {}),
    }
    services = open_services(Settings.from_env(full_env))
    admin = writer = ""
    if keys:
        store = KeyStore(services.storage)
        _, admin = store.create("root", Permission.ADMIN, None)
        _, writer = store.create("ci", Permission.WRITE, None)
    clock = Clock()
    services.uplink.clock = clock
    services.uplink.breaker.clock = clock
    app = create_app(services)
    return ProxyApp(
        falcon.testing.TestClient(app),
        services,
        clock,
        {"Authorization": f"Bearer {admin}"},
        {"Authorization": f"Bearer {writer}"},
        data,
        full_env,
    )
