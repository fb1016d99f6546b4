"""Ping and the live record."""

from __future__ import annotations

import falcon

from app.monitoring import require_monitoring_access
from r13core.config import (
    FEATURE_MEANINGS,
    FIELD_MEANINGS,
    FIELDS,
    Config13,
    ConfigStore,
    Feature,
    TerminalMode,
)


class Ping:
    """``GET /-/ping``: npm's liveness check."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {}


class OpenAPIDocument:
    """``GET /_api/openapi.json``: app/openapi.py's document, that module (and the eight
    it gathers the paths from, ~0.3 MB) loaded by the first request, not by every worker."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        from app.openapi import document

        resp.media = document()


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


_CAMEL = {"registry_hash": "registryHash", "feature_flags": "featureFlags"}


def record_layout() -> dict[str, object]:
    """Where each field of the record lies and what each flag means (README's table)."""
    return {
        "size": 13,
        "fields": [
            {
                "name": _CAMEL.get(name, "terminalMode" if name == "terminal_mode" else name),
                "offset": offset,
                "size": size,
                "max": limit,
                "meaning": FIELD_MEANINGS[name],
            }
            for name, (offset, size, limit) in FIELDS.items()
        ],
        "features": [
            {"name": f.name, "bit": f.bit_length() - 1, "meaning": FEATURE_MEANINGS[f.name or ""]}
            for f in Feature
        ],
        "terminalModes": {str(m.value): m.name.lower() for m in TerminalMode},
    }


class ConfigLayout:
    """``GET /_api/config/layout``: the record's fields and flags (what the dashboard and
    scripts label the bytes with); readable like ``GET /_api/config``."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        require_monitoring_access(req, self.store, admin=False)
        resp.media = record_layout()
