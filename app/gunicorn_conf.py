"""gunicorn settings, from r13's own settings (environment first).

The master also imports the app's modules (``PRELOAD``) before it forks, so a worker
starts with them in memory and only builds the app (app/wsgi.py: opens its services,
creates the falcon app): the imports are paid once, not once per worker, and their
pages are shared copy-on-write. The app itself is not built in the master
(``preload_app`` stays False): its SQLite connections, the record, the rate limiter's
table, its threads and sockets are opened by each worker after fork. Under the gevent
worker the master monkey-patches first (``monkey.patch_all()``), as gunicorn's worker
does after fork, so every lock, socket and thread class those modules create at import
is gevent's (tests/test_preload.py checks that importing them creates no OS-level lock,
thread, socket or open file). bench/RESULTS.md, "Cold start and idle memory", has the
figures.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from typing import Any

# Before any of r13's modules (r13core.settings alone loads much of r13core): only
# gunicorn's own were loaded unpatched, as they were when each worker patched after fork.
# The variable is read as r13core/settings.py reads it; a bad value stops just below.
if (os.environ.get("R13_WORKER_CLASS", "").strip().lower() or "gevent") == "gevent":
    from gevent import monkey

    monkey.patch_all()

from gunicorn import util

from app import gunicorn_response
from app.live.lifecycle import attach_worker
from r13core.datadir import UMASK, private_umask
from r13core.settings import Settings

_settings = Settings.from_env()
worker_class = _settings.server.worker_class

PRELOAD = ("app.main", "app.live.websocket", "app.slow_clients", "r13core.services")
"""What app/wsgi.py imports: loaded in the master, shared by every worker."""
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
    a response given whole leaves in one write (app/gunicorn_response.py); the WebSockets
    watch the worker to close with 1001 when it stops (app/live/lifecycle.py)."""
    util.write_error = json_error
    gunicorn_response.install()
    attach_worker(worker)
