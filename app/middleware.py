"""Middleware that reads the live record on every request."""

from __future__ import annotations

import os

import falcon

from r13core.config import ConfigStore, Feature


class DebugHeaders:
    """With DEBUG on, every response names the worker process that served it."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        self.pid = str(os.getpid())

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if self.store.read().has(Feature.DEBUG):
            resp.set_header("X-R13-Worker", self.pid)
