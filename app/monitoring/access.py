"""Who may read the monitoring routes (/metrics, /_api/performance/*, /_api/config)."""

from __future__ import annotations

import falcon

from app.security_middleware import request_is_local
from r13core.access import Action
from r13core.config import ConfigStore, Feature


def can_read_monitoring(
    req: falcon.Request, store: ConfigStore, *, admin: bool | None = None
) -> bool:
    """Whether ``req`` may read /metrics, /_api/performance/* or /_api/config.

    A request that carries a key is decided by the security layer's guard
    (r13core.access, the one decision point): admin for /_api/performance/*,
    read for /metrics and /_api/config (``admin`` overrides the choice by
    path); a bad key is 401 and too weak a key 403 (raised). Without a key:
    anyone when PRIVATE_REGISTRY is off, and only local clients (a scraper or
    admin on this machine, not through a proxy: app/security_middleware.py
    ``request_is_local``) when it is on.
    """
    guard = getattr(req.context, "guard", None)
    if guard is not None and getattr(req.context, "token", None) is not None:
        if admin is None:
            admin = req.path != "/metrics"
        guard.require(req, Action.ADMIN if admin else Action.READ)
        return True
    if not store.enabled(Feature.PRIVATE_REGISTRY):
        return True
    return request_is_local(req)


def require_monitoring_access(
    req: falcon.Request, store: ConfigStore, *, admin: bool | None = None
) -> None:
    """Raise 403 unless :func:`can_read_monitoring`."""
    if not can_read_monitoring(req, store, admin=admin):
        raise falcon.HTTPForbidden(
            description="without a key this is readable only from this machine (not "
            "through a proxy) while PRIVATE_REGISTRY is on"
        )
