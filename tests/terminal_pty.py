"""`r13` started in a pseudo-terminal with pexpect, for the terminal's tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
WAIT = 60
"""Seconds any expected output may take (generous: a loaded machine is slow)."""


def spawn_r13(*args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    """``python -m app.cli ARGS`` in a 24x100 pty. prompt_toolkit is told not to ask for
    the cursor position (pexpect does not answer); poll() instead of select(), which
    fails on descriptors above 1023 (a long test run holds many)."""
    environment = {**os.environ, "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1", **(env or {})}
    return pexpect.spawn(
        sys.executable,
        ["-m", "app.cli", *args],
        cwd=str(ROOT),
        env=environment,
        encoding="utf-8",
        timeout=WAIT,
        dimensions=(24, 100),
        use_poll=True,
    )
