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
* :func:`off_hub` runs long pure-Python work in gevent's thread pool;
* :func:`start_in_thread` starts blocking system calls in a real thread and goes on
  (a publish writes its tarball while it checks the rest).

Nothing here imports gevent unless gevent is already loaded: a CLI command or a
test in plain threads never pays for it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


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


class Running(Protocol[T_co]):
    """Work started by :func:`start_in_thread`."""

    def result(self) -> T_co:
        """Wait for the work (without blocking gevent's hub) and return what it returned,
        or raise what it raised."""
        ...


class _GeventRunning(Generic[T]):
    """gevent's AsyncResult of a pool thread, as :class:`Running`."""

    def __init__(self, async_result: Any) -> None:
        self._async = async_result

    def result(self) -> T:
        return self._async.get()  # type: ignore[no-any-return]


_POOL: dict[int, Any] = {}
"""This process's thread pool for :func:`start_in_thread` without gevent (by pid: a pool's
threads do not survive a fork)."""
_POOL_LOCK = threading.Lock()


def start_in_thread(fn: Callable[..., T], *args: Any) -> Running[T]:
    """Start ``fn(*args)`` in a real OS thread and go on; ``.result()`` waits for it.

    For blocking system calls (writing and fsyncing a file) that can run while this thread
    does Python work: under gevent in its thread pool (the hub keeps serving meanwhile;
    waiting for the result yields to it), else in a small pool of this process. ``fn`` must
    not use greenlet-local state, gevent's sockets or r13core's storage connections.
    """
    if patched():
        import gevent

        return _GeventRunning(gevent.get_hub().threadpool.spawn(fn, *args))
    import os
    from concurrent.futures import ThreadPoolExecutor

    pid = os.getpid()
    pool = _POOL.get(pid)
    if pool is None:
        with _POOL_LOCK:
            pool = _POOL.get(pid)
            if pool is None:
                _POOL.clear()
                pool = _POOL[pid] = ThreadPoolExecutor(4, thread_name_prefix="r13-io")
    future: Running[T] = pool.submit(fn, *args)
    return future
