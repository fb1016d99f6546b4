"""What the hot reads (app/hot_reads.py) buy a packument GET, end to end through gunicorn.

``python -m bench.hot_reads_ab [--rounds 5] [--duration 6] [--concurrency 32] [--driver auto]``

Starts ``r13 serve`` (2 gevent workers, as shipped) on a fresh data dir, publishes one
small package, then alternates (bench/ab.py) the same server with the hot reads on
(``R13_HOT_READS=1``, the default) and off (``0``: every request through falcon and its
middleware), for an anonymous ``GET /small`` (PRIVATE_REGISTRY off) and for one with the
admin key (PRIVATE_REGISTRY on). Prints req/s per run, the medians and on/off per case;
writes a JSON report. Both sides share the 2 cores with the load generator, so the ratio
says how much less work per request the server does, diluted by the generator's own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import ab
from bench.security_overhead import publish_small
from bench.servers import exit_on_sigterm

SERVE = {"R13_WORKERS": "2"}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hot_reads_ab", description=__doc__)
    ab.add_arguments(p, rounds=5, duration=6.0)
    args = p.parse_args(argv)
    exit_on_sigterm()
    summary: dict[str, dict[str, float]] = {}
    reports: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for case, private in (("anonymous", "0"), ("with a key", "1")):

        def variants(data: Path, private: str = private) -> list[ab.Variant]:
            admin = publish_small(data)
            token = admin if private == "1" else None
            env = {**SERVE, "R13_FEATURE_PRIVATE_REGISTRY": private}
            return [
                ab.Variant("on", {**env, "R13_HOT_READS": "1"}, token=token),
                ab.Variant("off", {**env, "R13_HOT_READS": "0"}, token=token),
            ]

        run = ab.alternate_fresh("bench.hot_reads_ab", "/small", args, variants)
        if run is None:
            return 2
        driver, results = run
        med = ab.medians(results)
        ratio = med["on"] / med["off"]
        print(f"{case}: median on {med['on']:.1f} req/s, off {med['off']:.1f}; on/off {ratio:.3f}")
        summary[case] = {**med, "on_over_off": round(ratio, 3)}
        reports[case] = results
    runs = {f"{case} {side}": r for case, res in reports.items() for side, r in res.items()}
    out = ab.write_report("hot_reads_ab", args, driver, runs, summary)
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
