"""Ping and the live record."""

from __future__ import annotations

import falcon

from r13core.config import ConfigStore


class Ping:
    """``GET /-/ping``: npm's liveness check."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {}


class ConfigResource:
    """``GET /_api/config``: the live 13-byte record, decoded."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        generation, raw = self.store.snapshot()
        from r13core.config import Config13

        body = Config13.from_bytes(raw).as_dict()
        body["generation"] = generation
        resp.media = body
        resp.cache_control = ["no-store"]
