"""Copy the dashboard's npm libraries into ``app/static/dashboard/vendor/``.

``dashboard/package.json`` pins uPlot (the charts) and @xterm/xterm (the terminal);
``dashboard/package-lock.json`` pins them to the byte (npm checks each tarball's
integrity). This script runs ``npm ci`` when ``dashboard/node_modules`` is missing or
older than the lockfile, then copies the few files the page loads, with their licences,
into the package (git-ignored: the minified libraries are never committed and never
fetched from a CDN at run time). ``make build`` and ``setup.py``'s ``build_py`` (so every
wheel) call it; ``python dashboard/vendor.py`` runs it by hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEST = ROOT / "app" / "static" / "dashboard" / "vendor"
# (package, file in the package, name served under vendor/)
FILES = (
    ("uplot", "dist/uPlot.esm.js", "uPlot.esm.js"),
    ("uplot", "dist/uPlot.min.css", "uPlot.min.css"),
    ("uplot", "LICENSE", "LICENSE.uplot.txt"),
    ("@xterm/xterm", "lib/xterm.mjs", "xterm.mjs"),
    ("@xterm/xterm", "css/xterm.css", "xterm.css"),
    ("@xterm/xterm", "LICENSE", "LICENSE.xterm.txt"),
)


def _installed(modules: Path, lock: dict[str, object]) -> bool:
    packages = lock.get("packages")
    if not isinstance(packages, dict):
        return False
    for name in {f[0] for f in FILES}:
        manifest = modules / name / "package.json"
        want = packages.get(f"node_modules/{name}", {})
        if not manifest.is_file() or not isinstance(want, dict):
            return False
        if json.loads(manifest.read_text()).get("version") != want.get("version"):
            return False
    return True


def _strip_source_map(data: bytes) -> bytes:
    """Drop the ``sourceMappingURL`` comment: the map is not shipped."""
    lines = data.split(b"\n")
    kept = [
        line
        for line in lines
        if not line.lstrip().startswith((b"//# sourceMappingURL=", b"/*# sourceMappingURL="))
    ]
    return b"\n".join(kept)


def build(root: Path = ROOT) -> Path:
    """Install (when needed) and copy; returns the vendor directory."""
    here = root / "dashboard"
    dest = root / "app" / "static" / "dashboard" / "vendor"
    lock = json.loads((here / "package-lock.json").read_text())
    modules = here / "node_modules"
    if not _installed(modules, lock):
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("dashboard/vendor.py: npm is needed to build the dashboard")
        subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=here, check=True
        )
    dest.mkdir(parents=True, exist_ok=True)
    for package, name, served in FILES:
        data = (modules / package / name).read_bytes()
        if served.endswith((".js", ".mjs", ".css")):
            data = _strip_source_map(data)
        target = dest / served
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)
    return dest


if __name__ == "__main__":
    print(build(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT))
