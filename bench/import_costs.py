"""What each import costs at start: ``python -X importtime`` of what a worker and `r13` load.

``python -m bench.import_costs [--repeat 5] [--top 25] [--json out.json]``

Runs, ``--repeat`` times each, a fresh interpreter that imports ``app.wsgi`` (what every
gunicorn worker imports after fork; it also builds the app over a prepared temp data dir,
so the figure is a worker's start, or since `r13 serve` preloads the app's modules in
gunicorn's master, what the master loads plus a worker's start) and one that imports
``app.cli.serve_cmd`` (what `r13 serve` loads before it prepares the data dir; the
package app.cli itself loads each command only when the parser is built). Prints the
medians: the whole import, the self time summed by top-level package (r13core, app,
falcon, gevent, ...: where the time goes), and the modules with the largest cumulative
time. Also lists which of the modules a first
request does not need were imported at all (they should not be: they load on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench.servers import REPO

_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")
LAZY = ("cryptography", "markdown_it", "nh3", "prometheus_client", "psutil", "tqdm",
        "prompt_toolkit")  # fmt: skip
TARGETS = {
    "worker (import app.wsgi)": "app.wsgi",
    "`r13 serve` (import app.cli.serve_cmd)": "app.cli.serve_cmd",
}


def one_run(module: str, env: dict[str, str]) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """(self us by top-level package, cumulative us by module, lazy modules loaded)."""
    code = f"import sys, {module}; print(' '.join(m for m in {LAZY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env, cwd=env.get("PYTHONPATH") or REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    by_package: dict[str, int] = defaultdict(int)
    cumulative: dict[str, int] = {}
    for line in out.stderr.splitlines():
        match = _LINE.match(line)
        if match:
            name = match[4]
            by_package[name.split(".")[0]] += int(match[1])
            cumulative[name] = int(match[2])
    return by_package, cumulative, out.stdout.split()


def measure(module: str, env: dict[str, str], repeat: int, top: int) -> dict[str, object]:
    runs = [one_run(module, env) for _ in range(repeat)]
    packages = {p for r in runs for p in r[0]}
    modules = {m for r in runs for m in r[1]}
    self_ms = {p: statistics.median(r[0].get(p, 0) for r in runs) / 1000 for p in packages}
    cum_ms = {m: statistics.median(r[1].get(m, 0) for r in runs) / 1000 for m in modules}
    heaviest = sorted(cum_ms.items(), key=lambda kv: -kv[1])[:top]
    return {
        "total_ms": cum_ms.get(module, 0.0),
        "self_ms_by_package": dict(sorted(self_ms.items(), key=lambda kv: -kv[1])[:top]),
        "cumulative_ms_by_module": dict(heaviest),
        "lazy_modules_loaded": sorted({m for r in runs for m in r[2]}),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.import_costs", description=__doc__)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--pythonpath",
        default=None,
        help="measure the r13 of another checkout (its root, built in place): before/after",
    )
    args = p.parse_args(argv)
    report: dict[str, object] = {"repeat": args.repeat}
    with tempfile.TemporaryDirectory(prefix="r13-imports-") as tmp:
        env = {**os.environ, "R13_DATA": tmp, "R13_PUBLIC_URL": "http://127.0.0.1:4873"}
        if args.pythonpath:
            env["PYTHONPATH"] = args.pythonpath
        cwd = args.pythonpath or REPO
        subprocess.run([sys.executable, "-c", "import app.wsgi"], env=env, cwd=cwd, check=True)
        for title, module in TARGETS.items():
            figures = measure(module, env, args.repeat, args.top)
            report[module] = figures
            print(f"\n{title}: {figures['total_ms']:.1f} ms (median of {args.repeat})")
            print("  self time by top-level package (ms):")
            for name, ms in figures["self_ms_by_package"].items():  # type: ignore[attr-defined]
                print(f"    {name:32} {ms:8.1f}")
            print("  largest cumulative imports (ms):")
            for name, ms in figures["cumulative_ms_by_module"].items():  # type: ignore[attr-defined]
                print(f"    {name:48} {ms:8.1f}")
            print(
                f"  loaded although no first request needs them: {figures['lazy_modules_loaded']}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
