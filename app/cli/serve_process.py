"""How `r13 serve` becomes the server: gunicorn's master in this very process.

`r13 serve` used to exec a fresh ``python -m gunicorn``: a second interpreter that
imported gunicorn, gevent and r13 all over again after the command had already loaded
most of r13 to prepare the data dir. Now the command's process runs gunicorn's arbiter
itself (:class:`Server`), with the same config (app/gunicorn_conf.py) and app
(``app.wsgi:application``), so what the command loaded is loaded once, and the
workers fork from it (bench/RESULTS.md, "Cold start and idle memory").

Under the gevent worker that process must be monkey-patched before any of r13's
modules load (as gunicorn's worker would patch after fork, and as app/gunicorn_conf.py
does when gunicorn is started on its own): :func:`patch_early` runs first thing in
``r13 serve`` (app/cli/__init__.py ``main``), importing nothing of r13 before it.
This module stays light for that reason.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

CONFIG = "python:app.gunicorn_conf"
APP = "app.wsgi:application"
_own_process = False


def gevent_worker(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether R13_WORKER_CLASS names the gevent worker (read as r13core/settings.py reads
    it: a bad value is refused there, by name)."""
    return (environ.get("R13_WORKER_CLASS", "").strip().lower() or "gevent") == "gevent"


def patch_early() -> None:
    """Make this process, `r13 serve` itself, ready to be gunicorn's master: monkey-patched
    when the workers are gevent's (gthread: nothing to patch)."""
    global _own_process
    if gevent_worker():
        _patch_all()
    _own_process = True


def _patch_all() -> None:
    """``gevent.monkey.patch_all()``, with the installed packages' entry points read once.

    gevent offers every patch event (~25 of them) to plugins, and each offer reads the
    entry points of every installed distribution again: ~75 ms of CPU, half of what
    patching costs. The distributions do not change while it patches.
    """
    import importlib.metadata as metadata

    from gevent import monkey

    read = metadata.entry_points
    everything = read()

    def entry_points(**params: Any) -> Any:
        return everything.select(**params) if params else read()

    metadata.entry_points = entry_points
    try:
        monkey.patch_all()
    finally:
        metadata.entry_points = read


def preload_safe() -> bool:
    """Whether gunicorn's master may import the app's modules before it forks
    (app/gunicorn_conf.py): it is `r13 serve`, patched first, or nothing needs patching."""
    return _own_process or not gevent_worker()


def in_process() -> bool:
    """Whether gunicorn runs in this process: only when :func:`patch_early` ran first
    (`r13 serve` as its own command line); a caller's process is never taken over."""
    return _own_process


def run(environ: dict[str, str]) -> None:
    """Run gunicorn's master here with ``environ`` (never returns: it exits when stopped)."""
    os.environ.clear()
    os.environ.update(environ)
    from gunicorn.app.wsgiapp import WSGIApplication

    class Server(WSGIApplication):  # type: ignore[misc]  # gunicorn has no type hints
        """gunicorn's command line as `python -m gunicorn --config CONFIG APP` would see it;
        ``sys.argv`` stays `r13 serve`'s, so a re-exec (USR2) starts `r13 serve` again."""

        def load_config(self) -> None:
            argv = sys.argv
            sys.argv = [argv[0], "--config", CONFIG, APP]
            try:
                super().load_config()
            finally:
                sys.argv = argv

    server: Any = Server("%(prog)s [OPTIONS] [APP_MODULE]", prog="r13 serve")
    server.run()


def exec_gunicorn(environ: dict[str, str]) -> None:
    """Replace this process by ``python -m gunicorn`` (when gunicorn may not run here)."""
    argv = [sys.executable, "-m", "gunicorn", "--config", CONFIG, APP]
    os.execve(sys.executable, argv, environ)
