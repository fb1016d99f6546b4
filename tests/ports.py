"""Ports for the servers tests start, and proof that the server answering is the test's own.

A port chosen by binding to port 0 and closing again lies in the kernel's ephemeral range:
until the server binds it, the kernel may hand it to any process on the machine, for its
own bind to port 0 or as the local port of an outgoing connection (tests elsewhere open
thousands). Then the server cannot bind it and exits, or, worse, a test polling the port
gets its answer from somebody else's server. So :func:`free_port` picks a port the kernel
never hands out (outside ``/proc/sys/net/ipv4/ip_local_port_range``), and
:func:`listens_on` tells whether the server a test started is the one holding the port.
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # below: ports of well-known services


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(x) for x in _RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default
    return low, high


def _bindable(port: int) -> bool:
    # As gunicorn binds (SO_REUSEADDR): a port held in TIME_WAIT by a server that just
    # stopped is usable, a port any live socket holds is not.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port() -> int:
    """A loopback TCP port nobody holds now and the kernel never hands out on its own."""
    low, high = _ephemeral_range()
    candidates = [p for p in range(_LOWEST, 65_536) if not low <= p <= high]
    rng = random.SystemRandom()
    for port in rng.sample(candidates, min(len(candidates), 2000)):
        if _bindable(port):
            return port
    raise RuntimeError("no free TCP port outside the ephemeral range")


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` (a server's master) holds the listening socket of ``port``."""
    with contextlib.suppress(psutil.Error):
        return any(
            c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
            for c in psutil.Process(pid).net_connections(kind="tcp")
        )
    return False


def bind_failed(log_text: str) -> bool:
    """Whether gunicorn's log says it could not bind its address (the port was taken)."""
    return "Connection in use" in log_text


class NeverAnswered(RuntimeError):
    """The server kept running without answering in time (it is left running)."""


def wait_until_serving(
    proc: subprocess.Popen[bytes],
    port: int,
    log: Path,
    answers: Callable[[], bool],
    *,
    timeout: float = 120.0,
    log_from: int = 0,
) -> bool:
    """Wait until server ``proc`` holds ``port`` and ``answers()`` says it serves.

    True then; False if it exited because another process had taken the port (the
    caller picks another); raises RuntimeError if it exited otherwise, NeverAnswered if
    ``timeout`` (generous: a loaded machine starts gunicorn slowly) ran out. Only an
    answer from this server counts: ``answers`` is asked only while its master holds the
    port, and an OSError from it counts as no answer yet. ``log_from``: where this
    launch's output starts in ``log``.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with log.open("rb") as f:
                f.seek(log_from)
                text = f.read().decode(errors="replace")
            if bind_failed(text):
                return False
            raise RuntimeError(f"the server exited: {text[-3000:]}")
        if listens_on(proc.pid, port):
            with contextlib.suppress(OSError):
                if answers():
                    return True
        time.sleep(0.1)
    raise NeverAnswered(f"the server did not answer in {timeout:.0f} s: {log.read_text()[-3000:]}")
