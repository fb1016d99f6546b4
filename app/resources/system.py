"""Ping and the live record."""

from __future__ import annotations

import falcon

from app.monitoring import require_monitoring_access
from r13core.config import Config13, ConfigStore


class Ping:
    """``GET /-/ping``: npm's liveness check."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {}


class ConfigResource:
    """``GET /_api/config``: the live 13-byte record, decoded."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Like /metrics: a key needs `read`; without one, public unless
        # PRIVATE_REGISTRY is on, then this machine only (never through a proxy).
        require_monitoring_access(req, self.store, admin=False)
        generation, raw = self.store.snapshot()
        body = Config13.from_bytes(raw).as_dict()
        body["generation"] = generation
        resp.media = body
        resp.cache_control = ["no-store"]
