"""A test-only gunicorn app: r13 plus endpoints that make load on demand.

``GET /_test/slow?ms=N`` sleeps N ms; ``GET /_test/burn?ms=N`` spins the CPU
for N ms. Load it as ``tests.monitor_app:application`` (from the repo root).
"""

from __future__ import annotations

import os
import time

import falcon

from app.main import create_app
from r13core.services import open_services
from r13core.settings import Settings


class Slow:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        time.sleep(req.get_param_as_int("ms", default=100) / 1000)
        resp.media = {"slept": True}


class Burn:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        end = time.perf_counter() + req.get_param_as_int("ms", default=100) / 1000
        n = 0
        while time.perf_counter() < end:
            n += 1
        resp.media = {"spins": n}


class Fail:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPInternalServerError(description="on purpose")


application = create_app(open_services(Settings.from_env()), root_pid=os.getppid())
application.add_route("/_test/slow", Slow())
application.add_route("/_test/burn", Burn())
application.add_route("/_test/fail", Fail())
