"""The npm-family clients the end-to-end tests drive, installed once into .tools/clients.

npm comes with Node on the machine; pnpm, yarn classic and bun are installed
from the npm registry at pinned versions (bun's binary arrives in an optional
per-platform package). The install is cached: a second call only checks the
versions.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PREFIX = REPO / ".tools" / "clients"
PINS = {"pnpm": "12.21.0", "yarn": "1.22.22", "bun": "1.4.5"}


def npm() -> Path:
    """The npm on PATH (Node 20, npm 11 on the build machines)."""
    found = shutil.which("npm")
    if found is None:
        raise RuntimeError("npm is not on PATH")
    return Path(found)


def _version(binary: Path) -> str:
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    return out.stdout.strip() if out.returncode == 0 else ""


def _installed() -> dict[str, Path] | None:
    bins = {name: PREFIX / "node_modules" / ".bin" / name for name in PINS}
    if all(b.exists() and _version(b) == PINS[n] for n, b in bins.items()):
        return bins
    return None


def ensure_clients() -> dict[str, Path]:
    """Paths to pnpm, yarn and bun at their pinned versions, installing them if needed."""
    PREFIX.mkdir(parents=True, exist_ok=True)
    with (PREFIX / ".lock").open("w") as lock:  # parallel test runs install once
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _installed()
        if found is not None:
            return found
        env = {**os.environ, "npm_config_registry": "https://registry.npmjs.org/"}
        subprocess.run(
            [
                str(npm()),
                "install",
                "--prefix",
                str(PREFIX),
                "--no-audit",
                "--no-fund",
                "--no-save",
                *(f"{name}@{version}" for name, version in PINS.items()),
            ],
            check=True,
            env=env,
            timeout=600,
        )
        found = _installed()
        if found is None:
            raise RuntimeError(f"installing {PINS} into {PREFIX} did not give working binaries")
        return found


if __name__ == "__main__":
    for name, path in ensure_clients().items():
        print(name, PINS[name], path)
