"""Debian's Chromium for the browser tests: installed with apt when missing.

``python -m tests.browser.chromium`` (tests/run.sh runs it) installs the ``chromium``
package unless ``/usr/bin/chromium`` exists. Playwright drives that binary
(tests/browser/conftest.py); Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

CHROMIUM: Final = Path("/usr/bin/chromium")
# What the browser needs on a machine with no network but loopback (each one stops a
# background connection that would be refused) and no GPU, as root.
ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def ensure_chromium() -> Path:
    """The Chromium binary, installed from Debian first if it is missing."""
    if CHROMIUM.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise SystemExit(
            "tests/browser: /usr/bin/chromium is missing; install Debian's chromium package "
            "(apt-get install -y chromium, as root)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "--no-install-recommends", "chromium"]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        subprocess.run([apt, "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    if not CHROMIUM.exists():
        raise SystemExit("tests/browser: apt installed chromium but /usr/bin/chromium is missing")
    return CHROMIUM


if __name__ == "__main__":
    print(ensure_chromium(), file=sys.stderr)
