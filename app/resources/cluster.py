"""``GET /_api/cluster`` (admin): the nodes of the cluster, their heartbeats, the total.

Every node's sampler leader writes a heartbeat row each tick
(r13core/cluster/heartbeat.py); this lists them, each ``alive`` or ``stale``
(no heartbeat for R13_NODE_STALE_AFTER ms), with the latest sample's figures and
the cluster's total. On one machine (SQLite) it answers ``"clustered": false``.
"""

from __future__ import annotations

import falcon

from app.auth import Guard
from app.http import send_media
from r13core.access import Action
from r13core.services import Services


class ClusterNodes:
    """``GET /_api/cluster``."""

    def __init__(self, services: Services, guard: Guard) -> None:
        self.services = services
        self.guard = guard

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.guard.require(req, Action.ADMIN)
        send_media(resp, self.services.cluster_view())
