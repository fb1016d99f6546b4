"""Package-pattern matching: the ReDoS pattern, then and now.

Run: .venv/bin/python -m pytest bench/bench_patterns.py --benchmark-only -q
     .venv/bin/python -m bench.bench_patterns   (one call each, old regex x1..x4)

The review's pattern ``**a`` x 40 against a 214-character name that almost
matches froze a worker (a regex with nested ``.*`` backtracks exponentially:
each extra ``**a`` multiplies the time by ~40). The old translation is timed
here only up to 3 repetitions (4 take about a second per call, 5 about 40 s);
r13's automaton (r13core/patterns.py) takes the full 40 in one step per
character. tests/test_patterns.py asserts the step count; this file shows time.
"""

from __future__ import annotations

from typing import Any

import pytest

from r13core.names import MAX_NAME_LENGTH
from r13core.patterns import Pattern
from tests.glob_oracle import glob_regex

ALMOST = "a" * (MAX_NAME_LENGTH - 1) + "b"


old_regex = glob_regex  # what r13 did before (tests/glob_oracle.py)


@pytest.mark.benchmark(group="redos-pattern")
@pytest.mark.parametrize("repeat", [2, 3])
def test_old_regex_on_the_redos_pattern(benchmark: Any, repeat: int) -> None:
    regex = old_regex("**a" * repeat)
    assert benchmark(regex.fullmatch, ALMOST) is None


@pytest.mark.benchmark(group="redos-pattern")
@pytest.mark.parametrize("repeat", [2, 3, 40])
def test_automaton_on_the_redos_pattern(benchmark: Any, repeat: int) -> None:
    pattern = Pattern("**a" * repeat)
    assert benchmark(pattern.match, ALMOST) is False


@pytest.mark.benchmark(group="usual-pattern")
def test_old_regex_on_a_scope_pattern(benchmark: Any) -> None:
    regex = old_regex("@mycompany/*")
    assert benchmark(regex.fullmatch, "@mycompany/widgets") is not None


@pytest.mark.benchmark(group="usual-pattern")
def test_shortcut_on_a_scope_pattern(benchmark: Any) -> None:
    pattern = Pattern("@mycompany/*")
    assert benchmark(pattern.match, "@mycompany/widgets") is True


@pytest.mark.benchmark(group="usual-pattern")
def test_automaton_on_a_two_wildcard_pattern(benchmark: Any) -> None:
    pattern = Pattern("@*/widget-*")
    assert benchmark(pattern.match, "@mycompany/widget-core") is True


def main(argv: list[str] | None = None) -> None:
    """One call each of the old regex with 1..N repetitions (4 takes about a second)."""
    import argparse
    import json
    import time

    parser = argparse.ArgumentParser(prog="python -m bench.bench_patterns")
    parser.add_argument("--max-repeat", type=int, default=4, help="largest `**a` repetition")
    parser.add_argument("--json", help="also write the figures (ms) to this file")
    args = parser.parse_args(argv)
    rows = []
    for repeat in range(1, args.max_repeat + 1):
        regex = old_regex("**a" * repeat)
        start = time.perf_counter()
        regex.fullmatch(ALMOST)
        old = time.perf_counter() - start
        pattern = Pattern("**a" * repeat)
        start = time.perf_counter()
        pattern.match(ALMOST)
        new = time.perf_counter() - start
        rows.append({"repeat": repeat, "old_regex_ms": old * 1e3, "automaton_ms": new * 1e3})
        print(f"**a x {repeat}: old regex {old * 1e3:10.3f} ms   automaton {new * 1e3:8.3f} ms")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"patterns": rows}, out, indent=1)


if __name__ == "__main__":
    main()
