"""Shared by the micro benches: the quick (CI) mode, C bench programs, C/Python ratios.

``--quick`` is how `make test` runs every bench (bench/ci.py): pytest-benchmark with few
rounds, fixed-round benches cut to ``rounds(n)`` and loops to ``loops(n)``, so each one is
shown to run; its figures are not for reading.

A bench that has a C path and a pure-Python twin puts both in one
``benchmark.group`` and names the side with an id (``[c]``, ``[py]``,
``[python]``) or a name prefix (``test_c_``, ``test_py_``); the summary hook prints,
per group, both medians and the ratio py/C (above 1: C is faster).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.cprogram import build_c_program


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        help="CI mode: few rounds and short loops; shows every bench runs, not how fast",
    )


@pytest.fixture
def quick(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--quick"))


@pytest.fixture
def rounds(quick: bool) -> Callable[[int], int]:
    """``rounds(n)``: n, or 2 in quick mode (for ``benchmark.pedantic``)."""
    return lambda n: min(n, 2) if quick else n


@pytest.fixture
def loops(quick: bool) -> Callable[[int], int]:
    """``loops(n)``: n, or a hundredth of it in quick mode (for loops inside one round)."""
    return lambda n: max(1, n // 100) if quick else n


@pytest.fixture
def per_call(benchmark: Any, quick: bool) -> Callable[..., Any]:
    """``per_call(fn, *args)``: ``benchmark(fn, *args)`` for a call of about a microsecond or
    less, timed in rounds of 1,000 calls (pytest-benchmark's pedantic mode). Timed one call
    per round, as plain ``benchmark`` does for fast calls, every figure also carries the two
    timer reads and the loop around it (~0.2-0.3 us on this VM, more than a limiter check);
    here they are spread over the round. The result is what one call returned."""

    def run(fn: Callable[..., Any], *args: Any) -> Any:
        return benchmark.pedantic(
            fn, args=args, iterations=10 if quick else 1000, rounds=2 if quick else 300,
            warmup_rounds=1,
        )  # fmt: skip

    return run


@pytest.fixture
def c_program(tmp_path: Path) -> Callable[[str, list[str]], Path]:
    """``c_program(name, csrc_files)``: bench/c/<name>.c built with -O2 against csrc/."""
    return lambda name, sources: build_c_program(name, sources, tmp_path)


# The side a benchmark measures: a [c]/[py]/[python] id, or a test_c_/test_py_ name.
_SIDE = re.compile(r"(?:\[|-)(c|py|python)(?:-[^\]]*)?\]$|^test_(c|py)_")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: dict[str, dict[str, float]] = {}
    for bench in session.benchmarks:
        match = _SIDE.search(bench.name)
        if not match or not bench.stats:
            continue
        side = "c" if (match.group(1) or match.group(2)) == "c" else "py"
        key = bench.group or _SIDE.sub("", bench.name)
        groups.setdefault(key, {})[side] = bench.stats.median
    rows = [(k, v["c"], v["py"]) for k, v in sorted(groups.items()) if "c" in v and "py" in v]
    if not rows:
        return
    tr = terminalreporter
    tr.write_sep("-", "C path vs pure-Python twin (medians)")
    tr.write_line(f"{'benchmark':58} {'C':>10} {'Python':>10} {'py/C':>6}")
    for name, c, py in rows:
        tr.write_line(f"{name:58} {_ns(c):>10} {_ns(py):>10} {py / c:6.2f}")


def _ns(seconds: float) -> str:
    ns = seconds * 1e9
    return f"{ns:.0f} ns" if ns < 10_000 else f"{ns / 1000:.1f} us"
