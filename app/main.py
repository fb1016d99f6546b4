"""The app factory: builds every collaborator and wires the routes."""

from __future__ import annotations

import falcon

from app import errors
from app.middleware import DebugHeaders
from app.resources.system import ConfigResource, Ping
from r13core.config import Config13, ConfigStore
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
    settings: Settings, *, config: ConfigStore | None = None
) -> falcon.App[falcon.Request, falcon.Response]:
    """A WSGI app serving r13 for ``settings``."""
    store = config if config is not None else open_config(settings)
    app = falcon.App(media_type=falcon.MEDIA_JSON, middleware=[DebugHeaders(store)])
    app.req_options.strip_url_path_trailing_slash = False
    errors.install(app)
    app.add_route("/-/ping", Ping())
    app.add_route("/_api/config", ConfigResource(store))
    return app
