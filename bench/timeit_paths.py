"""The hottest per-request paths timed with :mod:`timeit`, without pytest-benchmark's timer.

``python -m bench.timeit_paths [--repeat 7] [--number 200000] [--json FILE]``

pytest-benchmark times each round with its own clock read, which adds a few hundred ns to
sub-microsecond figures; timeit runs a tight loop of ``--number`` calls and divides.
Prints the median (and min) of ``--repeat`` loops per path, in ns per call:

- ``ConfigStore.read``: the decoded record, as every request reads it (one C call and a
  generation compare; the decode is cached until the record changes);
- ``ConfigStore.read_bytes``: the 13 raw bytes (one C call);
- ``Policy.authorize``: the permission check of a read with a ``read`` key;
- ``Limit.take``: the rate-limit check of a request (app/security_middleware.py), one
  call into the shared table with the decision packed in an int; ``Limit.take_with``: an
  address's limit and its API key's in one call;
- a Python function that does nothing, called the same way: what the loop and the call
  themselves cost here (each figure above includes it once).

The calls with an argument are timed as a statement (``take(key)``), so no lambda or
partial adds a frame of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from r13core.access import Action, Policy
from r13core.config import ConfigStore
from r13core.keys import KeyInfo, Permission
from r13core.ratelimit import RateLimiter

KEY = "203.0.113.7"  # an address, as the server's limiter key
HUGE = 1_000_000_000  # a capacity that keeps the key admitted (the usual case)


def _medians(loops: list[float], number: int) -> dict[str, float]:
    per_call = [t / number * 1e9 for t in loops]
    return {"median_ns": round(statistics.median(per_call), 1), "min_ns": round(min(per_call), 1)}


def time_call(fn: Callable[[], object], repeat: int, number: int) -> dict[str, float]:
    return _medians(timeit.repeat(fn, repeat=repeat, number=number), number)


def time_stmt(stmt: str, names: dict[str, Any], repeat: int, number: int) -> dict[str, float]:
    return _medians(timeit.repeat(stmt, repeat=repeat, number=number, globals=names), number)


def nothing(key: str) -> None:
    """The floor: a Python call with one argument."""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.timeit_paths", description=__doc__)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--number", type=int, default=200_000)
    p.add_argument("--json", dest="json_out")
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="r13-timeit-") as tmp,
        ConfigStore(Path(tmp)) as store,
        RateLimiter(Path(tmp), "timeit") as limiter,
    ):
        policy = Policy()
        key = KeyInfo("k", Permission.READ, datetime.now(UTC), None, False)

        def authorize() -> None:
            policy.authorize(key, Action.READ, private=True, package="left-pad", client_ip="::1")

        paths: dict[str, Callable[[], object]] = {
            "ConfigStore.read (decoded record)": store.read,
            "ConfigStore.read_bytes (13 bytes)": store.read_bytes,
            "Policy.authorize (read, read key)": authorize,
        }
        ip, per_key = limiter.limit(HUGE, 1000), limiter.limit(HUGE, 1000)
        names = {"take": ip.take, "take_with": ip.take_with, "per_key": per_key, "key": KEY,
                 "nothing": nothing}  # fmt: skip
        statements = {
            "Limit.take (rate-limit check)": "take(key)",
            "Limit.take_with (address + API key)": "take_with(key, per_key, 'key:k')",
            "a call that does nothing (floor)": "nothing(key)",
        }
        for name, fn in paths.items():
            results[name] = time_call(fn, args.repeat, args.number)
        for name, stmt in statements.items():
            results[name] = time_stmt(stmt, names, args.repeat, args.number)
        for name, r in results.items():
            print(f"{name:40} {r['median_ns']:8.1f} ns median  ({r['min_ns']:.1f} min)")
    if args.json_out:
        report = {"bench": "timeit_paths", "repeat": args.repeat, "number": args.number}
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps({**report, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
