"""Whether a socket or descriptor has data, without ``select.select``'s descriptor limit.

``select.select`` refuses descriptors numbered 1024 and above ("filedescriptor out of
range"), and a test process that has run many tests before (a pytest-xdist worker) can
hold that many. ``poll`` has no such limit.
"""

from __future__ import annotations

import select
import socket


def readable(target: socket.socket | int, timeout: float) -> bool:
    """True when ``target`` has data (or its peer closed) within ``timeout`` seconds."""
    poller = select.poll()
    poller.register(target, select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(max(0, int(timeout * 1000))))
