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

from collections.abc import Callable
from pathlib import Path

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
def c_program(tmp_path: Path) -> Callable[[str, list[str]], Path]:
    """``c_program(name, csrc_files)``: bench/c/<name>.c built with -O2 against csrc/."""
    return lambda name, sources: build_c_program(name, sources, tmp_path)
