"""The npm-family clients the end-to-end tests drive, installed once into .tools/.

npm 11 comes with Node on the machine; pnpm, yarn classic and bun are installed
from the npm registry at pinned versions into .tools/clients (bun's binary
arrives in an optional per-platform package). Two more pinned releases get a
prefix each, because a second npm or pnpm would clash with the first in one
node_modules: npm 10 (the README names it as supported) in .tools/npm10, and
pnpm 12.4 (the last pnpm 12 that lists owners through
``/-/package/:pkg/owners``) in .tools/pnpm12.4. The install is cached: a
second call only checks the versions.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
PREFIX = TOOLS / "clients"
PINS = {"pnpm": "12.21.0", "yarn": "1.22.22", "bun": "1.4.5"}


@dataclass(frozen=True)
class Extra:
    """A client release installed in a prefix of its own: ``.tools/<name>``."""

    package: str
    version: str


EXTRAS = {"npm10": Extra("npm", "10.9.9"), "pnpm12.4": Extra("pnpm", "12.4.2")}


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


def _install(prefix: Path, specs: list[str]) -> None:
    env = {**os.environ, "npm_config_registry": "https://registry.npmjs.org/"}
    subprocess.run(
        [str(npm()), "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save",
         *specs],
        check=True, env=env, timeout=600,
    )  # fmt: skip


def _ensure(prefix: Path, pins: dict[str, str], bins: dict[str, str]) -> dict[str, Path]:
    """``{name: binary}`` for ``bins`` (name -> package) at ``pins``, installing if needed."""
    paths = {name: prefix / "node_modules" / ".bin" / pkg for name, pkg in bins.items()}

    def ready() -> bool:
        return all(p.exists() and _version(p) == pins[bins[n]] for n, p in paths.items())

    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".lock").open("w") as lock:  # parallel test runs install once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready():
            _install(prefix, [f"{pkg}@{version}" for pkg, version in pins.items()])
            if not ready():
                raise RuntimeError(f"installing {pins} into {prefix} gave no working binaries")
    return paths


def ensure_clients() -> dict[str, Path]:
    """Paths to every pinned client (pnpm, yarn, bun, npm10, pnpm12.4), installing if needed."""
    found = _ensure(PREFIX, PINS, {name: name for name in PINS})
    for name, extra in EXTRAS.items():
        found.update(_ensure(TOOLS / name, {extra.package: extra.version}, {name: extra.package}))
    return found


if __name__ == "__main__":
    for name, path in ensure_clients().items():
        print(name, _version(path), path)
