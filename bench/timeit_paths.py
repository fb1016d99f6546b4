"""The hottest per-request paths timed with :mod:`timeit`, without pytest-benchmark's timer.

``python -m bench.timeit_paths [--repeat 7] [--number 200000] [--json FILE]``

pytest-benchmark times each round with its own clock read, which adds a few hundred ns to
sub-microsecond figures; timeit runs a tight loop of ``--number`` calls and divides.
Prints the median (and min) of ``--repeat`` loops per path, in ns per call:

- ``ConfigStore.read``: the decoded record, as every request reads it (one C call and a
  generation compare; the decode is cached until the record changes);
- ``ConfigStore.read_bytes``: the 13 raw bytes (one C call);
- ``Policy.authorize``: the permission check of a read with a ``read`` key.
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


def time_call(fn: Callable[[], object], repeat: int, number: int) -> dict[str, float]:
    loops = timeit.repeat(fn, repeat=repeat, number=number)
    per_call = [t / number * 1e9 for t in loops]
    return {"median_ns": round(statistics.median(per_call), 1), "min_ns": round(min(per_call), 1)}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.timeit_paths", description=__doc__)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--number", type=int, default=200_000)
    p.add_argument("--json", dest="json_out")
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="r13-timeit-") as tmp, ConfigStore(Path(tmp)) as store:
        policy = Policy()
        key = KeyInfo("k", Permission.READ, datetime.now(UTC), None, False)

        def authorize() -> None:
            policy.authorize(key, Action.READ, private=True, package="left-pad", client_ip="::1")

        paths: dict[str, Callable[[], object]] = {
            "ConfigStore.read (decoded record)": store.read,
            "ConfigStore.read_bytes (13 bytes)": store.read_bytes,
            "Policy.authorize (read, read key)": authorize,
        }
        for name, fn in paths.items():
            results[name] = time_call(fn, args.repeat, args.number)
            r = results[name]
            print(f"{name:40} {r['median_ns']:8.1f} ns median  ({r['min_ns']:.1f} min)")
    if args.json_out:
        report = {"bench": "timeit_paths", "repeat": args.repeat, "number": args.number}
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps({**report, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
