"""The state file every worker reads: ``<data>/run/metrics.json``.

The sampler writes its history, alert log and own state there (temp file +
rename, no fsync: it is monitoring, not data); :class:`MonitorView` is the
read side each worker answers ``/_api/performance/*`` from.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Final

from r13core.monitor.summary import summarize

STATE_FORMAT: Final = 1
STATE_FILE: Final = "run/metrics.json"


def write_state(data_dir: Path, state: dict[str, Any]) -> None:
    """Replace the state file with ``state`` (a temp file renamed over it)."""
    path = data_dir / STATE_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    data = json.dumps({"format": STATE_FORMAT, **state}, separators=(",", ":")).encode()
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600), "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def remove_stale_temp_files(data_dir: Path) -> None:
    """Remove the temp files of samplers killed while writing (only the leader calls it)."""
    for stale in (data_dir / STATE_FILE).parent.glob(f".{Path(STATE_FILE).name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


class MonitorView:
    """The read side every worker answers from: ``<data>/run/metrics.json``.

    Parsed once per change of the file (inode, mtime, size), so every worker
    serves the same history at the cost of a stat per request.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.path = Path(data_dir) / STATE_FILE
        self._key: tuple[int, int, int] | None = None
        self._state: dict[str, Any] = {}
        self._lock = threading.Lock()

    def state(self) -> dict[str, Any]:
        """The whole state (empty dict before the first sample)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self._key:
            return self._state
        with self._lock:
            try:
                state = json.loads(self.path.read_bytes())
            except (OSError, ValueError):
                return self._state
            if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
                return {}
            self._state, self._key = state, key
            return state

    def history(self) -> list[dict[str, Any]]:
        """The kept samples, oldest first."""
        return list(self.state().get("history", []))

    def latest(self) -> dict[str, Any] | None:
        """The last sample, or None before the first."""
        h = self.state().get("history") or []
        return dict(h[-1]) if h else None

    def alerts(self) -> dict[str, Any]:
        """Active alerts and the recent log (newest first)."""
        log_ = list(self.state().get("alerts", {}).get("log", []))
        return {
            "active": [a for a in log_ if a.get("state") == "active"],
            "recent": list(reversed(log_)),
            "rules": self.state().get("rules", []),
        }

    def summary(self, now: float | None = None) -> dict[str, Any]:
        """Min/avg/max/percentiles of every figure over the history, uptime, totals."""
        return summarize(self.history(), now=now)
