"""Waiting without stopping the server: right under gevent's greenlets and under threads.

gunicorn's gevent worker (the default, app/gunicorn_conf.py) monkey-patches the
process: threads become greenlets of one OS thread, ``threading.Lock`` and
``time.sleep`` wait on gevent's hub, ``threading.local`` is per greenlet. A call
that blocks in the kernel or in C (a blocking ``flock``, SQLite's busy handler)
stops every greenlet of the worker until it returns; and a greenlet that holds a
lock the kernel or SQLite knows about and then yields can leave another greenlet
of the same worker waiting for it in C, where it never yields back: the worker
hangs. This module is how r13core waits instead:

* :func:`r13core.locks.flock` takes a file lock without blocking the hub
  (non-blocking attempts, a cooperative sleep between them, under gevent; the
  kernel's own wait under threads, where only the calling thread waits);
* :func:`thread_local` is per OS thread also under gevent (one SQLite connection
  per worker, shared by its greenlets: r13core/storage/sqlite/connection.py);
* :func:`patched` says whether gevent has patched this process;
* :func:`off_hub` runs long pure-Python work in gevent's thread pool.

Nothing here imports gevent unless gevent is already loaded: a CLI command or a
test in plain threads never pays for it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def patched() -> bool:
    """Whether gevent has monkey-patched this process (a gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def thread_local() -> Any:
    """A ``threading.local`` that stays per OS thread when gevent has patched it per greenlet.

    Call it where the object is built (after gevent patched the worker, as
    ``app/wsgi.py`` is imported after fork).
    """
    if patched():
        from gevent import monkey

        return monkey.get_original("threading", "local")()
    return threading.local()


def off_hub(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, in gevent's thread pool when gevent has patched this process.

    For pure-Python work that takes long (rendering a README: r13core/readme.py): on the
    hub it would stop every greenlet of the worker until it returned; in a pool thread
    the hub keeps running (the GIL is handed over every switch interval). ``fn`` must
    not use greenlet-local state or r13core's storage. Without gevent: called here.
    """
    if patched():
        import gevent

        return gevent.get_hub().threadpool.apply(fn, args)  # type: ignore[no-any-return]
    return fn(*args)
