"""C-level benches: a program in bench/c/ built against csrc/ and run once, no Python.

Each program takes ``DIR ITERATIONS`` and prints ``name ns_per_op`` lines.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def build_c_program(name: str, sources: list[str], out_dir: Path) -> Path:
    """bench/c/<name>.c plus ``sources`` from csrc/, built with -O2; the executable."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed for the C-level benches"
    exe = out_dir / name
    csrc = ROOT / "csrc"
    subprocess.run(
        [cc, "-std=gnu11", "-O2", f"-I{csrc}", str(ROOT / "bench" / "c" / f"{name}.c"),
         *(str(csrc / s) for s in sources), "-o", str(exe), "-lrt", "-lpthread"],
        check=True,
    )  # fmt: skip
    return exe


def run_c_program(benchmark: Any, exe: Path, work: Path, iterations: int) -> dict[str, float]:
    """Run a C bench once under the benchmark timer; its figures, kept in extra_info."""
    work.mkdir(exist_ok=True)
    out = benchmark.pedantic(
        subprocess.run,
        args=([str(exe), str(work), str(iterations)],),
        kwargs={"check": True, "capture_output": True, "text": True},
        rounds=1,
        iterations=1,
    )
    figures = {}
    for line in out.stdout.splitlines():
        name, ns = line.split()
        figures[name] = float(ns)
    benchmark.extra_info.update({f"{k}_ns": v for k, v in figures.items()})
    return figures
