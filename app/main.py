"""The app factory: builds every collaborator and wires the routes."""

from __future__ import annotations

from typing import Any

import falcon

from app import errors
from app.monitoring import Monitoring
from app.openapi import OpenAPI
from app.resources import performance
from app.resources.system import ConfigResource, Ping
from r13core.config import Config13, ConfigStore
from r13core.monitor import RegistryStats
from r13core.settings import Settings


def open_config(settings: Settings) -> ConfigStore:
    """Open the data dir's record, applying R13_FEATURE_* overrides."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = ConfigStore(settings.data_dir, defaults=Config13.defaults(settings.public_url))
    current = store.read()
    for flag, on in settings.feature_overrides:
        if current.has(flag) != on:
            current = store.set_feature(flag, on)
    return store


def create_app(
    settings: Settings,
    *,
    config: ConfigStore | None = None,
    registry_stats: RegistryStats | None = None,
    sampler_root_pid: int | None = None,
) -> falcon.App[falcon.Request, falcon.Response]:
    """A WSGI app serving r13 for ``settings``.

    ``sampler_root_pid`` (the gunicorn master's pid, given by app/wsgi.py)
    starts this worker's monitor sampler over that process tree.
    """
    store = config if config is not None else open_config(settings)
    monitoring = Monitoring(
        settings, store, registry_stats=registry_stats, root_pid=sampler_root_pid
    )
    # The monitor first: its latency covers the other middleware. It also does
    # DebugHeaders' job (X-R13-Worker): each extra falcon middleware costs ~3 us.
    middleware: list[Any] = [monitoring.middleware]
    app = falcon.App(media_type=falcon.MEDIA_JSON, middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = False
    errors.install(app)
    app.add_route("/-/ping", Ping())
    app.add_route("/_api/config", ConfigResource(store))
    app.add_route("/_api/openapi.json", OpenAPI())
    performance.add_routes(app, monitoring)
    if sampler_root_pid is not None:
        monitoring.start()
    return app
