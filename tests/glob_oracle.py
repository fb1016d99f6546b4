"""The translation of package globs to regexes that r13 used before r13core/patterns.py.

``**`` -> ``.*``, ``*`` -> ``[^/]*``, anchored: correct, but nested wildcards make a
backtracking regex (the ReDoS the security review found). Kept here, outside the
library, as the oracle of the automaton's property tests (tests/test_patterns.py) and as
the baseline of its benchmark (bench/bench_patterns.py).
"""

from __future__ import annotations

import re


def glob_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` as the old regex; match with ``fullmatch``."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out), re.DOTALL)
