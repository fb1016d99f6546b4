"""The WSGI entry point gunicorn loads: `app.wsgi:application`."""

import os

from app.hot_reads import in_front
from app.live.websocket import serve_upgrades
from app.main import create_app
from app.slow_clients import BodyDeadline
from r13core.datadir import private_umask
from r13core.services import open_services
from r13core.settings import Settings

# Whatever gunicorn config loads this, what r13 writes stays its user's alone.
private_umask()

# Imported in each worker after fork; the worker's parent is the gunicorn master.
_settings = Settings.from_env()
_app = create_app(open_services(_settings), root_pid=os.getppid())
# serve_upgrades runs the WebSockets a route accepted (app/live/websocket.py); the hot
# reads (app/hot_reads.py: no body, no upgrade) answer before either wrapper.
application = in_front(
    _app,
    serve_upgrades(BodyDeadline(_app, _settings.server.body_timeout_ms / 1000)),
)
