"""The access log (JSON lines shared by every worker) and DEBUG's request lines on stderr."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("r13.access")
debug_log = logging.getLogger("r13.debug")


class JsonLines:
    """An append-only JSON-lines file shared by every worker.

    Each record is one ``write(2)`` on an ``O_APPEND`` descriptor, so lines
    from different processes never interleave. Opened on first use.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (errors are logged, never raised)."""
        self.write_line(json.dumps(record, separators=(",", ":"), default=str).encode() + b"\n")

    def write_line(self, line: bytes) -> None:
        """Append one line already encoded as JSON, ``\\n`` included (errors are logged)."""
        try:
            if self._fd < 0:
                with self._lock:
                    if self._fd < 0:
                        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                        self._fd = os.open(
                            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
                        )
            os.write(self._fd, line)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)

    def close(self) -> None:
        """Close the file (reopened by the next write)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def ensure_debug_handler() -> None:
    """Send DEBUG's request lines to stderr (gunicorn's error stream) at DEBUG level."""
    if not debug_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s [r13 %(process)d] %(message)s"))
        debug_log.addHandler(handler)
        debug_log.setLevel(logging.DEBUG)
        debug_log.propagate = False
