"""This process's pid, read without a system call.

``os.getpid()`` is a system call on every read (glibc stopped caching it), and code that
must notice a fork — a mapping, a connection or a lock made in the parent must not be
used in the child — asks for it on hot paths: the change signals are read twice per
request, the storage connections check it for every transaction. Every such check in
r13core reads :func:`current`: a copy kept up to date by ``os.register_at_fork``, which
runs in the child of every ``os.fork()`` (gunicorn's workers, multiprocessing's fork
context) before any other Python code there.
"""

from __future__ import annotations

import os

_pid = os.getpid()


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


def current() -> int:
    """``os.getpid()``, without the system call."""
    return _pid
