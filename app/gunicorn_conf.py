"""gunicorn settings, from r13's own settings (environment first).

Under `r13 serve` (app/cli/serve_process.py) gunicorn's master also imports the app's
modules (``PRELOAD``) before it forks, so a worker starts with them in memory and only
builds the app (app/wsgi.py: opens its services, creates the falcon app): the imports
are paid once, not once per worker, and their pages are shared copy-on-write. The app
itself is not built in the master (``preload_app`` stays False): its SQLite
connections, the record, the rate limiter's table, its threads and sockets are opened
by each worker after fork. Under the gevent worker that needs a master monkey-patched
before any of r13 loaded, which `r13 serve` does first thing; a gunicorn started
otherwise (``python -m gunicorn --config python:app.gunicorn_conf``) is not patched, and
its workers import the app themselves, as gunicorn's gevent worker patches after fork.
tests/test_preload.py checks that what the master holds at fork is no OS-level lock,
thread, socket, SQLite connection or mapping; bench/RESULTS.md, "Cold start and idle
memory", has the figures.
"""

from __future__ import annotations

import importlib
import json
import math
from typing import Any

from gunicorn import util

from app import gunicorn_request, gunicorn_response
from app.cli.serve_process import preload_safe
from app.live.lifecycle import attach_worker
from r13core.datadir import UMASK, private_umask
from r13core.settings import Settings

_settings = Settings.from_env()
worker_class = _settings.server.worker_class

PRELOAD = ("app.main", "app.live.websocket", "app.slow_clients", "r13core.services")
"""What app/wsgi.py imports: loaded in the master when it is safe, shared by every worker."""
if preload_safe():
    for _module in PRELOAD:
        importlib.import_module(_module)
# Files r13 makes are its user's alone, also when gunicorn is started without `r13 serve`.
private_umask()
umask = UMASK  # gunicorn's own (the control socket, worker temp files)

bind = [f"{_settings.server.host}:{_settings.server.port}"]
workers = _settings.server.workers
# gevent (the default, set above): one greenlet per connection, so slow and long-lived
# connections cost a greenlet each, not a thread of a fixed pool (docs/architecture.md,
# "Server model").
threads = _settings.server.threads  # gthread only
worker_connections = _settings.server.worker_connections  # gevent only
# The gevent worker reads each request line and its headers under this timeout (its
# keep-alive wait for the next request is the same one): a client that trickles header
# bytes is dropped. gunicorn takes whole seconds.
keepalive = max(1, math.ceil(_settings.server.header_timeout_ms / 1000))
preload_app = False  # modules only (above): each worker builds the app, opens its storage
graceful_timeout = 10
accesslog = None
# gunicorn 27's control socket defaults to one path per user (~/.gunicorn): two
# registries on one machine would fight over it. Keep it with the data.
control_socket = str((_settings.data_dir / "gunicorn.ctl").resolve())
# r13 builds every URL it renders from R13_PUBLIC_URL; never trust forwarded headers.
forwarded_allow_ips = ""


def json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's answer to requests it cannot parse (414, 431, 400), as r13's JSON error.

    gunicorn writes these itself, before the app sees the request, as an HTML page;
    every r13 error is ``{"error": ...}``.
    """
    body = json.dumps({"error": mesg or reason}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


if worker_class == "gevent":
    import gevent

    def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
        """Give the hub a turn after every response (fairness).

        Without it a connection whose next request is already buffered keeps the hub,
        and under saturation the others wait: p90 in the hundreds of ms (bench/RESULTS.md).
        """
        gevent.sleep(0)


def post_fork(server: Any, worker: Any) -> None:
    """In each worker, gunicorn's parser errors leave as JSON (write_error is their one writer);
    a response given whole leaves in one write (app/gunicorn_response.py); a request's set-up
    skips lookups whose answer never changes here and settings are plain attributes
    (app/gunicorn_request.py); the WebSockets watch the worker to close with 1001 when it
    stops (app/live/lifecycle.py)."""
    util.write_error = json_error
    gunicorn_response.install()
    gunicorn_request.install()
    gunicorn_request.freeze(worker.cfg)
    attach_worker(worker)
