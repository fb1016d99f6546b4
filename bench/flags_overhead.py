"""What the monitor costs a request through gunicorn: METRICS and LOGGING on, METRICS alone, off.

``python -m bench.flags_overhead [--rounds 3] [--duration 6] [--driver auto]``

Alternates (bench/ab.py) r13 with ``R13_FEATURE_METRICS=1 R13_FEATURE_LOGGING=1`` (the
defaults: shared-memory request counters, the sampler, the access log), with METRICS only
(no access log) and with both 0, on ``GET /-/ping`` (no storage, no key), r13's default 2
workers. Prints req/s per run, the medians and their ratios to "off"; writes a JSON report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench import ab
from bench.servers import exit_on_sigterm


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.flags_overhead", description=__doc__)
    ab.add_arguments(p, rounds=3, duration=6.0)
    args = p.parse_args(argv)
    exit_on_sigterm()
    variants = [
        ab.Variant("on", {"R13_FEATURE_METRICS": "1", "R13_FEATURE_LOGGING": "1"}),
        ab.Variant("metrics", {"R13_FEATURE_METRICS": "1", "R13_FEATURE_LOGGING": "0"}),
        ab.Variant("off", {"R13_FEATURE_METRICS": "0", "R13_FEATURE_LOGGING": "0"}),
    ]
    run = ab.alternate_fresh("bench.flags_overhead", "/-/ping", args, lambda data: variants)
    if run is None:
        return 2
    driver, results = run
    med = ab.medians(results)
    on, metrics = med["on"] / med["off"], med["metrics"] / med["off"]
    print(f"median req/s: METRICS+LOGGING {med['on']:.1f}, METRICS only {med['metrics']:.1f}, "
          f"neither {med['off']:.1f}")  # fmt: skip
    print(f"on/off {on:.3f}, metrics/off {metrics:.3f} ({driver.describe()})")
    summary = {
        "median_rps": med,
        "on_over_off": round(on, 4),
        "metrics_over_off": round(metrics, 4),
    }
    print(f"report: {ab.write_report('flags_overhead', args, driver, results, summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
