"""Build the C core and its C tests with -fsanitize=address,undefined and run them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
C_TESTS = sorted((ROOT / "tests" / "c").glob("test_*.c"))
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]

pytestmark = pytest.mark.slow


def _compiler() -> str:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    assert cc, "a C compiler is required to build r13"
    return cc


@pytest.mark.parametrize("source", C_TESTS, ids=[p.stem for p in C_TESTS])
def test_c_core_under_sanitizers(source: Path, tmp_path: Path) -> None:
    exe = tmp_path / source.stem
    sources = sorted(str(p) for p in CSRC.glob("*.c"))
    build = subprocess.run(
        [
            _compiler(),
            "-std=gnu11",
            "-g",
            "-O1",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unused-parameter",
            *SANITIZE,
            f"-I{CSRC}",
            *sources,
            str(source),
            "-o",
            str(exe),
            "-lrt",
            "-lpthread",
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.run(
        [str(exe), str(work)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"},
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_there_are_c_tests_for_each_part() -> None:
    parts = {p.stem for p in CSRC.glob("*.c")} - {"errors"}
    assert {p.stem for p in C_TESTS} >= {f"test_{part}" for part in parts}
