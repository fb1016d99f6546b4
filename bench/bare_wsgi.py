"""r13 without its security layer, for bench/security_overhead.py only.

The security middleware is swapped for one that only sets what resources read
(no client-address logic, limits, blocks, keys or counters), and the hot reads, which
call that layer, are off; PRIVATE_REGISTRY is expected off so reads are anonymous. Never
serve this.
"""

from __future__ import annotations

import os
from typing import Any

import falcon

import app.main as main_module
from r13core.services import open_services
from r13core.settings import Settings


class BareMiddleware:
    """Stands in for app.security_middleware.SecurityMiddleware."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def auth_failed(self, ip: str) -> None:
        pass

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.client_ip = req.remote_addr or ""
        req.context.identity = None


setattr(main_module, "SecurityMiddleware", BareMiddleware)  # noqa: B010 - replaced on purpose
application = main_module.create_app(open_services(Settings.from_env()), root_pid=os.getppid())
# The hot reads (app/hot_reads.py) call the security layer's functions: without the layer,
# every request goes through falcon.
application.hot = None
