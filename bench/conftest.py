"""Print C/Python ratios for benchmark groups.

A bench that has a C path and a pure-Python twin puts both in one
``benchmark.group`` and names the side with an id (``[c]``, ``[py]``,
``[python]``) or a name prefix (``test_c_``, ``test_py_``); this hook prints,
per group, both medians and the ratio py/C (above 1: C is faster).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

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
