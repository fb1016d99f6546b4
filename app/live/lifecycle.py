"""Whether this gunicorn worker is still serving: the bridge from gunicorn to the sockets.

gunicorn's SIGTERM (and SIGQUIT, max_requests) only sets ``worker.alive = False``
and waits up to ``graceful_timeout`` for open connections to end; a WebSocket
never ends by itself, so its loop must notice. ``app/gunicorn_conf.py`` hands the
worker over in ``post_fork``; :func:`worker_alive` is what
:class:`app.live.websocket.WebSockets` polls. Outside gunicorn (tests, the CLI)
there is no worker and the process counts as alive.
"""

from __future__ import annotations

from typing import Any

_worker: Any = None  # the one gunicorn worker of this process, once forked


def attach_worker(worker: Any) -> None:
    """Remember this process's gunicorn worker (called in the worker after fork)."""
    global _worker
    _worker = worker


def worker_alive() -> bool:
    """False once gunicorn told this worker to stop."""
    worker = _worker
    return worker is None or bool(getattr(worker, "alive", True))
